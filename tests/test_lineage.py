"""`mlops lineage`: from the manifest in the GitOps repository back to the data version."""

from __future__ import annotations

import json

import pytest
import yaml

from pyhelpers.errors import BadInput, OperationFailed
from tests._model_project import CHEAP, EXPERIMENT, GOOD, git, load, make_project, run_cli, write_status


def deploy(cfg) -> str:
    """Render the champion and push it to the GitOps repository, as line 2 does; the commit."""
    from pyhelpers.deploy.gitops import push_manifests
    from pyhelpers.deploy.render import render_manifests
    from pyhelpers.model.registry import get_champion

    champ = get_champion(cfg)
    out = push_manifests(cfg, render_manifests(cfg, champ), f"deploy {champ['name']} v{champ['version']}")
    return out["commit"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """v1 (data dv-0001) trained, registered, pushed; then v2 (data dv-0002) promoted but not pushed."""
    from pyhelpers.model.registry import register
    from pyhelpers.model.train import train

    config = make_project(tmp_path_factory.mktemp("lineage") / "taxi-fare", rows=300)
    cfg = load(config)
    write_status(cfg, CHEAP, data_version="dv-0001")
    first = train(cfg, EXPERIMENT)
    register(cfg, first["run_id"])
    commit = deploy(cfg)
    write_status(cfg, GOOD, data_version="dv-0002")
    second = train(cfg, EXPERIMENT)
    assert register(cfg, second["run_id"])["promoted"] is True
    return config, first, second, commit


def test_lineage_names_the_data_version_of_what_is_deployed_not_of_the_champion(deployed):
    from pyhelpers.lineage import lineage

    config, first, _, commit = deployed
    cfg = load(config)
    doc = lineage(cfg)
    assert doc["data_version"] == "dv-0001"  # what the deployed model was trained on
    assert doc["deployed"]["commit"] == commit == git(cfg.root / ".mlops" / "gitops.git", "rev-parse", "main")
    assert doc["deployed"]["path"] == "apps/taxi-fare/seldondeployment.yaml"
    assert doc["model"]["version"] == "1" and doc["model"]["is_champion"] is False  # v2 is champion, not pushed
    assert doc["run"]["run_id"] == first["run_id"]
    assert doc["run"]["params"] == CHEAP
    assert doc["git_commit"] == git(cfg.root, "rev-parse", "HEAD")
    assert doc["consistent"] is True, doc["checks"]
    assert {c["check"] for c in doc["checks"]} == {
        "manifest run id is the version's run", "manifest data version is the run's",
        "version's data version is the run's", "modelUri holds the version's model files"}
    # the status document now describes the Experiment's later run on dv-0002: said, not mixed in
    assert doc["experiment"]["same_run"] is False and "another run" in doc["experiment"]["note"]


def test_lineage_follows_a_new_push_and_reaches_the_experiment(deployed):
    config, _, second, commit = deployed
    cfg = load(config)
    new_commit = deploy(cfg)
    assert new_commit != commit
    res = run_cli(config, "lineage", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["data_version"] == "dv-0002"
    assert doc["model"] == doc["model"] | {"version": "2", "is_champion": True, "gate": "promoted"}
    assert doc["run"]["run_id"] == second["run_id"]
    assert doc["experiment"] == doc["experiment"] | {
        "name": EXPERIMENT, "found": True, "phase": "Succeeded", "best_trial": f"{EXPERIMENT}-0001",
        "objective_metric": "validation-rmse", "data_version": "dv-0002"}
    assert doc["consistent"] is True
    assert "Experiment's data version is the run's" in {c["check"] for c in doc["checks"]}
    human = run_cli(config, "lineage")
    assert human.returncode == 0
    assert "data        dv-0002" in human.stdout and "(champion)" in human.stdout


def test_a_manifest_that_disagrees_with_the_registry_is_flagged(deployed, tmp_path):
    from pyhelpers.lineage import lineage

    config, *_ = deployed
    cfg = load(config)
    text = git(cfg.root / ".mlops" / "gitops.git", "show", "main:apps/taxi-fare/seldondeployment.yaml")
    doc = yaml.safe_load(text)
    doc["metadata"]["annotations"]["mlops.io/data-version"] = "dv-forged"
    path = tmp_path / "sd.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = lineage(cfg, str(path))
    assert out["consistent"] is False
    bad = [c for c in out["checks"] if not c["ok"]]
    assert [c["check"] for c in bad] == ["manifest data version is the run's"]
    assert out["data_version"] != "dv-forged"  # the run's tag is the answer, the claim is only checked

    del doc["metadata"]["annotations"]["mlops.io/model-version"]
    del doc["metadata"]["labels"]["mlops.io/model-version"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(BadInput, match="metadata.annotations.mlops.io/model-version: missing"):
        lineage(cfg, str(path))


def test_nothing_deployed_is_a_failed_operation(tmp_path):
    config = make_project(tmp_path / "p", rows=60)
    res = run_cli(config, "lineage", "--json")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("mlops: error: nothing deployed yet: GitOps repository")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(tmp_path / "p" / ".mlops" / "gitops.git"))
    with pytest.raises(OperationFailed, match="branch 'main' does not exist"):
        from pyhelpers.lineage import lineage

        lineage(load(config))


def test_an_inference_service_is_traced_the_same_way(deployed, tmp_path):
    from pyhelpers.config import Config
    from pyhelpers.deploy.render import render_manifests
    from pyhelpers.lineage import lineage, read_deployed
    from pyhelpers.model.registry import get_champion

    config, *_ = deployed
    cfg = load(config)
    deploy_section = cfg.model.deploy.model_copy(update={"target": "kserve"})
    ks = Config(cfg.model.model_copy(update={"deploy": deploy_section}), cfg.root, cfg.source, cfg.overrides)
    # deploy.target switched but not pushed yet: the SeldonDeployment in the same folder is what serves
    found = read_deployed(ks)
    assert found["path"] == "apps/taxi-fare/seldondeployment.yaml" and "kind: SeldonDeployment" in found["text"]

    champ = get_champion(ks)
    path = tmp_path / "inferenceservice.yaml"
    path.write_text(render_manifests(ks, champ)[ks.gitops_path])
    doc = lineage(ks, str(path))
    d = doc["deployed"]
    assert (d["kind"], d["inference_service"], d["model_version"]) == ("InferenceService", "taxi-fare", champ["version"])
    assert d["model_uri_field"] == "storageUri" and d["model_uri"].endswith("/artifacts")
    assert doc["consistent"] is True, doc["checks"]
    assert "storageUri holds the version's model files" in {c["check"] for c in doc["checks"]}
    from pyhelpers.lineage import human

    assert human(doc).startswith("deployed    taxi-fare (InferenceService, ")
