"""mlops deploy render: deterministic SeldonDeployment + Argo CD Application, valid against upstream CRDs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pyhelpers.config import load_config
from pyhelpers.deploy.render import render_manifests, storage_uri
from pyhelpers.errors import BadInput
from tests import crds
from tests.conftest import git
from tests.test_s3 import AWS, CANARY, MLFLOW_BUCKET, mlflow_server, s3  # noqa: F401 - fixtures: moto S3, mlflow server

CONFIG = """\
project: taxi-fare
deploy:
  namespace: models
  replicas: 2
  storage_secret: seldon-s3
  resources:
    requests: {memory: 512Mi, cpu: 250m}
    limits: {cpu: "1", memory: 1Gi}
profiles:
  cluster:
    mlflow:
      tracking_uri: http://mlflow.mlflow.svc:5000
    gitops:
      repo: https://github.com/example-org/gitops.git
    deploy:
      model_uri_map:
        "mlflow-artifacts:/": "s3://mlflow/artifacts/"
"""


def make_cfg(tmp_path: Path, profile: str | None = None, text: str = CONFIG):
    (tmp_path / "mlops.yaml").write_text(text)
    return load_config(tmp_path / "mlops.yaml", profile, environ={})


def champion(tmp_path: Path, artifacts: bool = True, **over) -> dict:
    """A champion description; with ``artifacts`` its local artifact folder holds an MLmodel (deploy only what exists)."""
    doc = {
        "name": "taxi-fare",
        "version": "3",
        "run_id": "0123456789abcdef0123456789abcdef",
        "model_uri": "models:/taxi-fare/3",
        "artifact_uri": str(tmp_path / "mlruns" / "1" / "models" / "m-abc" / "artifacts"),
        "data_version": "dv-5f1c2a",
        "git_commit": "deadbeefcafe",
        "experiment": "taxi-fare-tuning",
        "best_trial": "taxi-fare-tuning-0003",
        "objective_metric": "validation-rmse",
        "objective_value": 1.2345,
    }
    doc.update(over)
    folder = Path(str(doc["artifact_uri"]))
    if artifacts and folder.is_absolute() and folder.is_relative_to(tmp_path):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "MLmodel").write_text("artifact_path: model\nflavors:\n  python_function: {}\n")
    return doc


def seldon_doc(files: dict[str, str], cfg) -> dict:
    return yaml.safe_load(files[cfg.gitops_path])


def test_render_is_byte_identical_for_the_same_champion(tmp_path):
    cfg = make_cfg(tmp_path)
    first = render_manifests(cfg, champion(tmp_path))
    shuffled = dict(reversed(list(champion(tmp_path).items())))  # key order of the input must not matter
    again = render_manifests(make_cfg(tmp_path), shuffled)
    assert first == again
    assert list(first) == ["apps/taxi-fare/seldondeployment.yaml", "argocd/taxi-fare.yaml"]
    changed = render_manifests(cfg, champion(tmp_path, version="4", model_uri="models:/taxi-fare/4"))
    assert changed[cfg.gitops_path] != first[cfg.gitops_path]
    assert changed["argocd/taxi-fare.yaml"] == first["argocd/taxi-fare.yaml"]


def test_seldon_deployment_content(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    cfg = make_cfg(tmp_path)
    files = render_manifests(cfg, champion(tmp_path))
    doc = seldon_doc(files, cfg)
    assert doc["apiVersion"] == "machinelearning.seldon.io/v1" and doc["kind"] == "SeldonDeployment"
    assert doc["metadata"]["namespace"] == "models"
    assert doc["spec"]["protocol"] == "v2"
    (pred,) = doc["spec"]["predictors"]
    assert pred["replicas"] == 2
    graph = pred["graph"]
    assert graph["implementation"] == "MLFLOW_SERVER"
    assert graph["envSecretRefName"] == "seldon-s3"
    assert graph["modelUri"] == Path(champion(tmp_path)["artifact_uri"]).as_uri()
    container = pred["componentSpecs"][0]["spec"]["containers"][0]
    assert container["name"] == graph["name"] == "taxi-fare"
    assert container["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"},
                                      "requests": {"cpu": "250m", "memory": "512Mi"}}
    ann = doc["metadata"]["annotations"]
    assert ann["mlops.io/model-name"] == "taxi-fare" and ann["mlops.io/model-version"] == "3"
    assert ann["mlops.io/run-id"] == "0123456789abcdef0123456789abcdef"
    assert ann["mlops.io/data-version"] == "dv-5f1c2a"
    assert ann["mlops.io/git-commit"] == "deadbeefcafe"
    assert ann["mlops.io/objective-value"] == "1.2345"
    labels = doc["metadata"]["labels"]
    assert labels["mlops.io/model-version"] == "3" and pred["labels"] == labels
    assert "model" not in labels  # would clash with MLServer's own `model` metric label
    text = "".join(files.values())
    assert "very-secret-value-123" not in text and "timestamp" not in text.lower()


def test_manifests_validate_against_upstream_crds(tmp_path):
    crds.require_crds()
    for profile in (None, "cluster"):
        cfg = make_cfg(tmp_path, profile)
        uri = "mlflow-artifacts:/1/models/m-abc/artifacts" if profile else str(tmp_path / "model")
        for path, text in render_manifests(cfg, champion(tmp_path, artifact_uri=uri)).items():
            assert crds.validate(yaml.safe_load(text)) == [], path


def test_crd_validation_catches_mistakes(tmp_path):
    """The validator must be able to fail: a misspelled field and a wrong type are reported."""
    crds.require_crds()
    cfg = make_cfg(tmp_path)
    doc = seldon_doc(render_manifests(cfg, champion(tmp_path)), cfg)
    doc["spec"]["predictors"][0]["graph"]["modelUrl"] = doc["spec"]["predictors"][0]["graph"].pop("modelUri")
    doc["spec"]["predictors"][0]["replicas"] = "two"
    errors = crds.validate(doc)
    assert any("modelUrl" in e for e in errors) and any("replicas" in e for e in errors), errors
    app = yaml.safe_load(render_manifests(cfg, champion(tmp_path))["argocd/taxi-fare.yaml"])
    del app["spec"]["destination"]
    assert any("destination" in e for e in crds.validate(app))


def test_cluster_profile_translates_mlflow_artifacts_uri(tmp_path):
    cfg = make_cfg(tmp_path, "cluster")
    files = render_manifests(cfg, champion(tmp_path, artifact_uri="mlflow-artifacts:/1/models/m-abc/artifacts"))
    doc = seldon_doc(files, cfg)
    assert doc["spec"]["predictors"][0]["graph"]["modelUri"] == "s3://mlflow/artifacts/1/models/m-abc/artifacts"
    # the original location stays visible for lineage
    assert doc["metadata"]["annotations"]["mlops.io/artifact-uri"] == "mlflow-artifacts:/1/models/m-abc/artifacts"
    assert storage_uri(cfg, "s3://bucket/x/artifacts") == "s3://bucket/x/artifacts"
    app = yaml.safe_load(files["argocd/taxi-fare.yaml"])
    assert app["spec"]["source"] == {"repoURL": "https://github.com/example-org/gitops.git",
                                     "targetRevision": "main", "path": "apps/taxi-fare"}


def test_cluster_profile_refuses_unreadable_uris(tmp_path):
    text = CONFIG.replace('        "mlflow-artifacts:/": "s3://mlflow/artifacts/"\n', "        {}\n").replace(
        "      model_uri_map:\n        {}", "      model_uri_map: {}")
    cfg = make_cfg(tmp_path, "cluster", text)
    with pytest.raises(BadInput, match="deploy.model_uri_map"):
        storage_uri(cfg, "mlflow-artifacts:/1/models/m-abc/artifacts")
    with pytest.raises(BadInput, match="deploy.model_uri_map"):
        storage_uri(cfg, "/local/path/artifacts")  # a cluster cannot read this machine's disk


def test_champion_without_version_is_bad_input(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(BadInput, match="'version'"):
        render_manifests(cfg, {k: v for k, v in champion(tmp_path).items() if k != "version"})


def test_cli_render_writes_atomically_and_reports_unchanged(tmp_path, mlops):
    make_cfg(tmp_path)
    (tmp_path / "champion.json").write_text(json.dumps(champion(tmp_path)))
    first = mlops("deploy", "render", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert first.code == 0, first
    doc = first.json()
    assert doc["changed"] is True and len(doc["files"]) == 2
    written = Path(doc["files"][0]["path"])
    assert written == tmp_path / ".mlops" / "manifests" / "apps" / "taxi-fare" / "seldondeployment.yaml"
    assert not list(written.parent.glob(".*"))  # no temp files left behind
    second = mlops("deploy", "render", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert second.code == 0 and second.json()["changed"] is False

    (tmp_path / "bad.json").write_text(json.dumps({"name": "taxi-fare", "artifact_uri": "/x"}))
    bad = mlops("deploy", "render", "--champion", "bad.json", cwd=tmp_path)
    assert bad.code == 2
    assert bad.err.strip() == "mlops: error: bad.json: champion description: missing key 'version'"


# -- deploy.target: kserve -------------------------------------------------------------------------
KSERVE = CONFIG.replace("\ndeploy:\n", "\ndeploy:\n  target: kserve\n  max_replicas: 4\n  service_account: models-s3\n", 1)


def test_kserve_inference_service_content(tmp_path):
    cfg = make_cfg(tmp_path, text=KSERVE)
    files = render_manifests(cfg, champion(tmp_path))
    assert list(files) == ["apps/taxi-fare/inferenceservice.yaml", "argocd/taxi-fare.yaml"]
    doc = yaml.safe_load(files[cfg.gitops_path])
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    assert doc["metadata"]["name"] == "taxi-fare" and doc["metadata"]["namespace"] == "models"
    pred = doc["spec"]["predictor"]
    assert (pred["minReplicas"], pred["maxReplicas"]) == (2, 4)
    assert pred["serviceAccountName"] == "models-s3"  # credentials the KServe way: never inline
    model = pred["model"]
    assert model["modelFormat"] == {"name": "mlflow"} and model["protocolVersion"] == "v2"
    assert model["storageUri"] == Path(champion(tmp_path)["artifact_uri"]).as_uri()
    assert model["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "512Mi"}}
    ann = doc["metadata"]["annotations"]
    assert ann["mlops.io/model-version"] == "3" and ann["mlops.io/data-version"] == "dv-5f1c2a"
    assert "serving.kserve.io/deploymentMode" not in ann  # the cluster's default unless configured
    # KServe copies the InferenceService's labels onto the predictor pods: the PodMonitor's relabelling uses them
    assert doc["metadata"]["labels"]["mlops.io/model-version"] == "3" and "model" not in doc["metadata"]["labels"]
    app = yaml.safe_load(files["argocd/taxi-fare.yaml"])
    assert app["spec"]["source"]["path"] == "apps/taxi-fare"  # the same folder as Seldon's: a switch is one commit

    raw = make_cfg(tmp_path, text=KSERVE.replace("  target: kserve\n", "  target: kserve\n  deployment_mode: Standard\n"))
    ann = yaml.safe_load(render_manifests(raw, champion(tmp_path))[raw.gitops_path])["metadata"]["annotations"]
    assert ann["serving.kserve.io/deploymentMode"] == "Standard"  # KServe v0.20's name for raw Deployments


def test_kserve_render_is_byte_stable_and_follows_the_champion(tmp_path):
    cfg = make_cfg(tmp_path, text=KSERVE)
    first = render_manifests(cfg, champion(tmp_path))
    again = render_manifests(make_cfg(tmp_path, text=KSERVE), dict(reversed(list(champion(tmp_path).items()))))
    assert first == again
    changed = render_manifests(cfg, champion(tmp_path, version="4", model_uri="models:/taxi-fare/4"))
    assert changed[cfg.gitops_path] != first[cfg.gitops_path]
    assert changed["argocd/taxi-fare.yaml"] == first["argocd/taxi-fare.yaml"]
    seldon = render_manifests(make_cfg(tmp_path), champion(tmp_path))
    assert seldon["apps/taxi-fare/seldondeployment.yaml"] != first["apps/taxi-fare/inferenceservice.yaml"]


def test_kserve_manifests_validate_against_the_kserve_crd(tmp_path):
    crds.require_crds()
    for profile in (None, "cluster"):
        cfg = make_cfg(tmp_path, profile, KSERVE)
        uri = "mlflow-artifacts:/1/models/m-abc/artifacts" if profile else str(tmp_path / "model")
        files = render_manifests(cfg, champion(tmp_path, artifact_uri=uri))
        for path, text in files.items():
            assert crds.validate(yaml.safe_load(text)) == [], path
        if profile:  # the real S3 path of the model, as for Seldon
            model = yaml.safe_load(files[cfg.gitops_path])["spec"]["predictor"]["model"]
            assert model["storageUri"] == "s3://mlflow/artifacts/1/models/m-abc/artifacts"
    doc = yaml.safe_load(render_manifests(make_cfg(tmp_path, text=KSERVE), champion(tmp_path))[cfg.gitops_path])
    model = doc["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")  # a misspelled field and a wrong type must be reported
    doc["spec"]["predictor"]["maxReplicas"] = "four"
    errors = crds.validate(doc)
    assert any("storageURI" in e for e in errors) and any("maxReplicas" in e for e in errors), errors


def test_kserve_config_is_checked(tmp_path):
    with pytest.raises(BadInput, match=r"deploy\.max_replicas.*must not be below deploy\.replicas \(2\)"):
        make_cfg(tmp_path, text=KSERVE.replace("max_replicas: 4", "max_replicas: 1"))
    with pytest.raises(BadInput, match=r"deploy\.target"):
        make_cfg(tmp_path, text=KSERVE.replace("target: kserve", "target: kfserving"))
    with pytest.raises(BadInput, match=r"deploy\.service_account: must be the name of a Kubernetes ServiceAccount"):
        make_cfg(tmp_path, text=KSERVE.replace("service_account: models-s3", "service_account: Models_S3"))
    with pytest.raises(BadInput, match=r"deploy\.deployment_mode"):
        make_cfg(tmp_path, text=KSERVE.replace("  target: kserve\n", "  target: kserve\n  deployment_mode: Raw\n"))


# -- deploy only what exists (issue 13) ------------------------------------------------------------
def test_missing_local_artifacts_are_exit_1_and_nothing_is_written_or_pushed(tmp_path, mlops):
    make_cfg(tmp_path)
    gone = champion(tmp_path, artifacts=False)
    (tmp_path / "champion.json").write_text(json.dumps(gone))
    for command in ("render", "push"):
        r = mlops("deploy", command, "--champion", "champion.json", cwd=tmp_path)
        assert r.code == 1, r
        assert r.err.strip().splitlines()[-1] == (
            f"mlops: error: champion taxi-fare version 3: no MLmodel at {gone['artifact_uri']} (its artifacts "
            "were deleted or never uploaded); nothing rendered or pushed")
    assert not (tmp_path / ".mlops" / "manifests").exists() and not (tmp_path / ".mlops" / "gitops.git").exists()

    # a folder without its MLmodel is no model either; a relative URI is the project's
    (tmp_path / "rel" / "artifacts").mkdir(parents=True)
    (tmp_path / "champion.json").write_text(json.dumps({**gone, "artifact_uri": "rel/artifacts"}))
    r = mlops("deploy", "render", "--champion", "champion.json", cwd=tmp_path)
    assert r.code == 1 and f"no MLmodel at {tmp_path / 'rel' / 'artifacts'}" in r.err, r
    (tmp_path / "rel" / "artifacts" / "MLmodel").write_text("flavors: {}\n")
    r = mlops("deploy", "render", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert r.code == 0 and r.json()["artifacts"]["via"] == "file system", r
    # bad input is still reported first (exit 2), before any look at the artifacts
    (tmp_path / "champion.json").write_text(json.dumps({k: v for k, v in gone.items() if k != "version"}))
    assert mlops("deploy", "render", "--champion", "champion.json", cwd=tmp_path).code == 2


def test_s3_artifacts_are_checked_with_head_object(s3, tmp_path, mlops):  # noqa: F811 - the fixture
    text = CONFIG + f"mlflow:\n  s3_endpoint_url: {s3.endpoint}\n"
    make_cfg(tmp_path, text=text)
    prefix = "mlflow/1/models/m-s3check/artifacts"
    s3.client.put_object(Bucket=MLFLOW_BUCKET, Key=f"{prefix}/MLmodel", Body=b"flavors: {}\n")
    here = champion(tmp_path, artifact_uri=f"s3://{MLFLOW_BUCKET}/{prefix}")
    (tmp_path / "champion.json").write_text(json.dumps(here))
    ok = mlops("deploy", "render", "--champion", "champion.json", "--json", cwd=tmp_path, env=AWS)
    assert ok.code == 0, ok
    assert ok.json()["artifacts"]["checked"] == f"s3://{MLFLOW_BUCKET}/{prefix}/MLmodel"
    assert f"storageUri: s3://{MLFLOW_BUCKET}/{prefix}" not in ok.out  # Seldon target: modelUri
    gone = {**here, "artifact_uri": f"s3://{MLFLOW_BUCKET}/mlflow/1/models/m-deleted/artifacts", "version": "4"}
    (tmp_path / "champion.json").write_text(json.dumps(gone))
    for command in ("render", "push"):
        r = mlops("deploy", command, "--champion", "champion.json", cwd=tmp_path, env=AWS)
        assert r.code == 1, r
        assert f"no MLmodel at s3://{MLFLOW_BUCKET}/mlflow/1/models/m-deleted/artifacts" in r.err, r
        assert CANARY not in r.out + r.err
    manifest = tmp_path / ".mlops" / "manifests" / "apps" / "taxi-fare" / "seldondeployment.yaml"
    assert "mlops.io/model-version: '3'" in manifest.read_text()  # the earlier render was not replaced
    assert not (tmp_path / ".mlops" / "gitops.git").exists()
    nokeys = {**AWS, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    r = mlops("deploy", "render", "--champion", "champion.json", cwd=tmp_path, env=nokeys)
    assert r.code == 1 and "cannot check the champion's artifacts" in r.err and "Traceback" not in r.err, r


@pytest.mark.slow  # starts a real `mlflow server` (about a minute here); the fast cases above cover the mechanism
def test_proxied_artifacts_are_checked_through_the_tracking_server(s3, mlflow_server, tmp_path, mlops):  # noqa: F811
    """mlflow-artifacts:/ URIs: the check lists the folder through the proxying server (the client holds no S3 role)."""
    text = CONFIG.replace("profiles:\n", f"mlflow:\n  tracking_uri: {mlflow_server.url}\n"
                          "  artifacts_destination: s3://mlflow/mlflow\nprofiles:\n", 1)
    make_cfg(tmp_path, text=text)
    s3.client.put_object(Bucket=MLFLOW_BUCKET, Key="mlflow/9/models/m-proxied/artifacts/MLmodel", Body=b"flavors: {}\n")
    for artifact, code in (("mlflow-artifacts:/9/models/m-proxied/artifacts", 0),
                           ("mlflow-artifacts:/9/models/m-deleted/artifacts", 1)):
        (tmp_path / "champion.json").write_text(json.dumps(champion(tmp_path, artifact_uri=artifact)))
        r = mlops("deploy", "render", "--champion", "champion.json", "--json", cwd=tmp_path,
                  env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "true"})
        assert r.code == code, r
        if code:
            assert f"no MLmodel at {artifact}" in r.err, r
        else:
            assert r.json()["artifacts"]["via"] == f"MLflow {mlflow_server.url}"


# -- switching deploy.target -------------------------------------------------------------------------
def _names_in_commit(bare: Path, rev: str = "main") -> list[str]:
    return git(bare, "show", "--name-status", "--no-renames", "--format=", rev).split("\n")[:-1]


def test_switching_target_is_one_commit_that_removes_the_old_manifest(tmp_path, mlops):
    make_cfg(tmp_path)
    (tmp_path / "champion.json").write_text(json.dumps(champion(tmp_path)))
    bare = tmp_path / ".mlops" / "gitops.git"
    seldon = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert seldon.code == 0 and seldon.json()["removed"] == [] and seldon.json()["target"] == "seldon", seldon
    assert mlops("deploy", "render", "--champion", "champion.json", cwd=tmp_path).code == 0

    make_cfg(tmp_path, text=KSERVE)
    switched = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert switched.code == 0, switched
    doc = switched.json()
    assert doc["changed"] and doc["removed"] == ["apps/taxi-fare/seldondeployment.yaml"]
    assert git(bare, "rev-list", "--count", "main").strip() == "2"  # one commit for the switch
    assert sorted(_names_in_commit(bare)) == ["A\tapps/taxi-fare/inferenceservice.yaml",
                                              "D\tapps/taxi-fare/seldondeployment.yaml",
                                              "M\targocd/taxi-fare.yaml"]
    assert git(bare, "ls-tree", "-r", "--name-only", "main", "apps/").split() == ["apps/taxi-fare/inferenceservice.yaml"]
    assert "removed apps/taxi-fare/seldondeployment.yaml in the same commit" in switched.err
    again = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert again.code == 0 and again.json()["changed"] is False, again

    # render's folder follows too: no stale SeldonDeployment beside the InferenceService
    rendered = mlops("deploy", "render", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert rendered.code == 0, rendered
    apps = tmp_path / ".mlops" / "manifests" / "apps" / "taxi-fare"
    assert sorted(p.name for p in apps.iterdir()) == ["inferenceservice.yaml"]
    assert rendered.json()["removed"] == [str(apps / "seldondeployment.yaml")]

    # and back: the InferenceService goes in the commit that brings the SeldonDeployment back
    make_cfg(tmp_path)
    back = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert back.code == 0 and back.json()["removed"] == ["apps/taxi-fare/inferenceservice.yaml"], back
    assert git(bare, "ls-tree", "-r", "--name-only", "main", "apps/").split() == ["apps/taxi-fare/seldondeployment.yaml"]


def test_switching_target_keeps_and_reports_a_file_mlops_did_not_render(tmp_path, mlops):
    make_cfg(tmp_path)
    (tmp_path / "champion.json").write_text(json.dumps(champion(tmp_path)))
    bare = tmp_path / ".mlops" / "gitops.git"
    assert mlops("deploy", "push", "--champion", "champion.json", cwd=tmp_path).code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    hand_written = "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: taxi-fare}\n"
    (clone / "apps" / "taxi-fare" / "seldondeployment.yaml").write_text(hand_written)
    git(clone, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "edited by hand")
    git(clone, "push", "-q", "origin", "HEAD:main")

    make_cfg(tmp_path, text=KSERVE)
    r = mlops("deploy", "push", "--champion", "champion.json", "--json", cwd=tmp_path)
    assert r.code == 0 and r.json()["removed"] == [] and r.json()["kept"] == ["apps/taxi-fare/seldondeployment.yaml"], r
    assert "was not rendered by mlops and is kept" in r.err and "served beside the new manifest" in r.err
    assert git(bare, "show", "main:apps/taxi-fare/seldondeployment.yaml") == hand_written
