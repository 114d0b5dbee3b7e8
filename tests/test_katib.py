"""`mlops experiment submit|wait|best|delete|logs` against a local Kubernetes API server.

The real kubernetes client (watch included) talks to tests/fakes/k8s.py through a kubeconfig
written here; status documents are shaped like Katib v1beta1's. The kubeconfig's token is a
canary that must never appear in any output or written file.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, MLOPS, git, run_mlops, write_experiment
from tests.fakes.k8s import KubeServer, katib_experiment_status, katib_trial
from tests.test_s3 import s3 as s3_server

CANARY = "k8s-CANARY-token-5d1e"
NS = "ml-exp"
EXP = ("kubeflow.org/v1beta1", "experiments", NS)


@pytest.fixture
def kube(tmp_path):
    with KubeServer(token=CANARY) as server:
        server.kubeconfig_path = server.kubeconfig(tmp_path / "kubeconfig")
        yield server


REMOTE = "s3://mlops-data/taxi-fare"  # trials pull from a remote store (never a folder of this machine)


def env_for(server: KubeServer) -> dict:
    return {"KUBECONFIG": str(server.kubeconfig_path), "MLOPS_K8S_NAMESPACE": NS, "MLOPS_DVC_REMOTE_URL": REMOTE}


def run(server, *args, cwd):
    r = run_mlops(*args, cwd=cwd, env=env_for(server), timeout=120)
    assert CANARY not in r.out + r.err
    return r


def start(server, *args, cwd, env: dict | None = None) -> subprocess.Popen:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "SLACK_"))}
    env = {**inherited, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env_for(server), **(env or {})}
    return subprocess.Popen([MLOPS, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    assert CANARY not in out + err
    return proc.returncode, out, err


def watching(server, since: int = 0) -> dict:
    return server.wait_for_request(lambda r: r["watch"] and r["path"].endswith("/experiments")
                                   and r["n"] >= since)


def submitted(server, project) -> dict:
    r = run(server, "experiment", "submit", "--json", cwd=project)
    assert r.code == 0, r
    return server.get(EXP[0], EXP[1], NS, r.json()["name"])


def complete(server, exp: dict, outcome: str = "Succeeded") -> list[dict]:
    """Play Katib's controllers: three trials, then the Experiment's final status."""
    trials = [katib_trial(exp, 1, {"learning-rate": "0.1", "n-estimators": "60"}, "Succeeded",
                          {"validation-rmse": 2.5, "train-rmse": 2.0}),
              katib_trial(exp, 2, {"learning-rate": "0.2", "n-estimators": "80"}, "Succeeded",
                          {"validation-rmse": 1.5, "train-rmse": 1.1}),
              katib_trial(exp, 3, {"learning-rate": "0.3", "n-estimators": "40"}, "Failed")]
    for t in trials:
        server.put(t, "trials")
    if outcome == "Succeeded":
        status = katib_experiment_status(exp, trials, "Succeeded", "ExperimentMaxTrialsReached",
                                         "Experiment has succeeded because max trial count has reached", best=trials[1])
    else:
        status = katib_experiment_status(exp, trials, "Failed", "ExperimentFailed",
                                         "Experiment has failed because max failed count has reached")
    server.patch(EXP[0], EXP[1], NS, exp["metadata"]["name"], {"status": status})
    return trials


def test_submit_creates_once_per_data_version(kube, project):
    from pyhelpers.config import load_config
    from pyhelpers.data import data_version
    from pyhelpers.line.data_line import experiment_name

    r1 = run(kube, "experiment", "submit", "--json", cwd=project)
    assert r1.code == 0, r1
    first = r1.json()
    version = data_version(load_config(project / "mlops.yaml"), "HEAD")
    assert first["created"] is True and first["name"] == experiment_name("taxi-fare-tuning", version)
    obj = kube.get(*EXP[:2], NS, first["name"])
    spec_doc = yaml.safe_load((project / "katib" / "experiment.yaml").read_text())
    # the file as written, except the trial's pod template wired to this image and data (test_submit_wires_...)
    unwired = {k: v for k, v in obj["spec"].items() if k != "trialTemplate"}
    assert unwired == {k: v for k, v in spec_doc["spec"].items() if k != "trialTemplate"}
    assert obj["spec"]["trialTemplate"]["trialParameters"] == spec_doc["spec"]["trialTemplate"]["trialParameters"]
    assert obj["metadata"]["namespace"] == NS
    ann = obj["metadata"]["annotations"]
    assert ann["mlops.io/data-version"] == version and ann["mlops.io/spec-file"] == "katib/experiment.yaml"
    assert ann["mlops.io/git-commit"] == first["git_commit"]

    r2 = run(kube, "experiment", "submit", "--json", cwd=project)
    assert r2.code == 0, r2
    assert r2.json()["created"] is False and r2.json()["status"] == "unchanged" and r2.json()["uid"] == first["uid"]
    assert "already exists" in r2.err
    assert len(kube.items(*EXP)) == 1
    posts = [q for q in kube.requests if q["method"] == "POST"]
    assert len(posts) == 2  # the second create met 409 AlreadyExists and found the existing one


def test_submit_rejects_a_bad_spec_before_the_cluster(kube, project):
    spec = project / "katib" / "experiment.yaml"
    spec.write_text(spec.read_text().replace("maxTrialCount: 8", "maxTrialCount: 1").replace(
        "maxFailedTrialCount: 3", "maxFailedTrialCount: 1"))  # Katib checks maxFailedTrialCount first
    r = run(kube, "experiment", "submit", cwd=project)
    assert r.code == 2 and "experiment.yaml" in r.err and "parallelTrialCount" in r.err, r
    # at most the katib-config ConfigMap was read: nothing was created
    assert all(q["method"] == "GET" and "/configmaps/" in q["path"] for q in kube.requests), kube.requests


def test_submit_validates_under_the_clusters_katib_config(kube, project):
    """A cluster whose katib-config runs tpe on Optuna accepts Optuna's settings (issue 9 item 2)."""
    from tests.test_katib_validation import TPE_ON_OPTUNA

    cfg = project / "mlops.yaml"
    cfg.write_text(cfg.read_text().replace("experiment:\n", "experiment:\n  engine: katib\n  katib_namespace: katib-system\n", 1))
    spec = project / "katib" / "experiment.yaml"
    spec.write_text(spec.read_text().replace("algorithmSettings:\n", "algorithmSettings:\n"
                                             "      - name: n_startup_trials\n        value: \"4\"\n", 1))
    refused = run(kube, "experiment", "submit", "--dry-run", cwd=project)
    assert refused.code == 2 and "got n_startup_trials" in refused.err, refused  # upstream default: hyperopt
    kube.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "katib-config", "namespace": "katib-system"},
              "data": {"katib-config.yaml": TPE_ON_OPTUNA}}, "configmaps")
    accepted = run(kube, "experiment", "submit", "--dry-run", cwd=project)
    assert accepted.code == 0, accepted


def test_wait_follows_the_watch_resumes_after_410_and_writes_the_local_shape(kube, project, local_doc):
    exp = submitted(kube, project)
    name = exp["metadata"]["name"]
    proc = start(kube, "experiment", "wait", "--json", cwd=project)
    first = watching(kube)
    kube.patch(EXP[0], EXP[1], NS, name, {"status": katib_experiment_status(exp, [], None)})
    kube.expire_watches()  # history compacted: resuming from the old resourceVersion answers 410
    watching(kube, first["n"] + 1)
    trials = complete(kube, exp)
    code, out, err = finish(proc)
    assert code == 0, err
    assert any(q.get("expired") for q in kube.requests), "the client never resumed from a stale resourceVersion"
    assert "410" in err and "resuming" in err
    # no sleep-polling: a handful of list/watch requests, not one per interval
    assert sum(q["method"] == "GET" for q in kube.requests) < 12

    data = json.loads(out)
    assert data["phase"] == "Succeeded" and data["best_trial"]["name"] == trials[1]["metadata"]["name"]
    assert data["best_trial"]["parameters"] == {"learning-rate": "0.2", "n-estimators": "80"}
    assert [t["name"] for t in data["failed_trials"]] == [trials[2]["metadata"]["name"]]
    doc = json.loads(Path(data["status_file"]).read_text())
    assert Path(data["status_file"]) == project / ".mlops" / "experiments" / name / "experiment.json"
    assert (project / ".mlops" / "experiments" / "latest").read_text().strip() == name
    # the same shape as the local engine's document
    assert set(local_doc) <= set(doc) and set(local_doc["status"]) <= set(doc["status"])
    assert set(local_doc["trials"][0]) == set(doc["trials"][0])
    assert set(local_doc["status"]["currentOptimalTrial"]) == set(doc["status"]["currentOptimalTrial"])
    assert [t["condition"] for t in doc["trials"]] == ["Succeeded", "Succeeded", "Failed"]
    assert doc["status"]["trialsKilled"] == 0 and doc["status"]["killedTrialList"] == []
    assert CANARY not in json.dumps(doc)

    from pyhelpers.config import load_config
    from pyhelpers.experiment.status import best_trial, load_status, phase
    from pyhelpers.model.train import finished_best_trial

    cfg = load_config(project / "mlops.yaml")
    loaded = load_status(cfg, name)
    assert phase(loaded) == "Succeeded" and best_trial(loaded)["metrics"]["validation-rmse"]["latest"] == "1.5"
    assert finished_best_trial(cfg, name)[1]["name"] == trials[1]["metadata"]["name"]  # what `model train` reads
    notified = run(kube, "notify", "experiment", cwd=project)  # defaults to the latest experiment
    assert notified.code == 0 and name in notified.out, notified


def test_wait_reports_a_failed_experiment_with_its_failed_trials(kube, project):
    exp = submitted(kube, project)
    trials = complete(kube, exp, outcome="Failed")
    r = run(kube, "experiment", "wait", cwd=project)
    assert r.code == 1, r
    assert "ExperimentFailed" in r.out and "max failed count" in r.out
    assert f"failed trial {trials[2]['metadata']['name']}: Trial has failed" in r.out


def test_wait_reconnects_when_the_stream_ends_and_retries_5xx(kube, project):
    exp = submitted(kube, project)
    kube.fail("GET", r"/experiments$", 500, times=2, watch=False)  # the initial list
    proc = start(kube, "experiment", "wait", "--json", cwd=project)
    first = watching(kube)
    kube.fail("GET", r"/experiments$", 503, times=1, watch=True)
    kube.drop_watches()  # e.g. a load balancer cut the stream: reconnect from the same resourceVersion
    watching(kube, first["n"] + 2)
    complete(kube, exp)
    code, out, err = finish(proc)
    assert code == 0, err
    assert "answered 500; retrying" in err and "503" in err
    assert not any(q.get("expired") for q in kube.requests)


def test_wait_times_out_with_exit_1(kube, project):
    exp = submitted(kube, project)
    kube.patch(EXP[0], EXP[1], NS, exp["metadata"]["name"], {"status": katib_experiment_status(exp, [], None)})
    started = time.monotonic()
    r = run(kube, "experiment", "wait", "--timeout-minutes", "0.04", cwd=project)
    assert r.code == 1 and "still Running after 2.4s" in r.err, r
    assert time.monotonic() - started < 30


def test_unknown_experiment_is_bad_input(kube, project):
    r = run(kube, "experiment", "wait", "--name", "nope", cwd=project)
    assert r.code == 2 and "no Experiment 'nope' in namespace 'ml-exp'" in r.err, r
    r = run(kube, "experiment", "best", "--name", "nope", cwd=project)
    assert r.code == 2, r


def test_persistent_5xx_fails_with_exit_1(kube, project):
    kube.fail("POST", r"/experiments$", 500, times=10)
    r = run(kube, "experiment", "submit", cwd=project)
    assert r.code == 1 and "Kubernetes API error 500" in r.err, r
    assert sum(q["method"] == "POST" for q in kube.requests) == 6  # bounded: 1 + 5 retries


def test_wrong_token_is_a_clear_error_without_the_token(kube, project, tmp_path):
    cfg = yaml.safe_load(kube.kubeconfig_path.read_text())
    cfg["users"][0]["user"]["token"] = "wrong-" + CANARY
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(yaml.safe_dump(cfg))
    r = run_mlops("experiment", "submit", cwd=project, env={**env_for(kube), "KUBECONFIG": str(bad)})
    assert r.code == 1 and "401 Unauthorized" in r.err, r
    assert CANARY not in r.out + r.err


def test_best_of_a_running_experiment_and_delete(kube, project):
    exp = submitted(kube, project)
    name = exp["metadata"]["name"]
    r = run(kube, "experiment", "best", "--json", cwd=project)
    assert r.code == 1 and r.json()["best_trial"] is None and r.json()["phase"] == "Created", r
    complete(kube, exp)
    r = run(kube, "experiment", "best", "--json", "--name", name, cwd=project)
    assert r.code == 0 and r.json()["best_trial"]["metrics"]["validation-rmse"]["min"] == "1.5", r

    r = run(kube, "experiment", "delete", "--json", cwd=project)
    assert r.code == 0 and r.json()["deleted"] is True, r
    assert kube.items(*EXP) == []
    r = run(kube, "experiment", "delete", "--json", cwd=project)
    assert r.code == 0 and r.json()["status"] == "unchanged", r


def test_logs_of_a_trial(kube, project):
    exp = submitted(kube, project)
    trial = complete(kube, exp)[0]
    tname = trial["metadata"]["name"]
    kube.put({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": f"{tname}-abcde", "namespace": NS, "labels": {"katib.kubeflow.org/trial": tname}},
              "spec": {"containers": [{"name": "training-container", "image": "x"},
                                      {"name": "metrics-logger-and-collector", "image": "y"}]}}, "pods")
    kube.pod_logs[(NS, f"{tname}-abcde", "metrics-logger-and-collector")] = "epoch=1 validation-rmse=2.5\n"
    r = run(kube, "experiment", "logs", tname, cwd=project)
    assert r.code == 0 and "validation-rmse=2.5" in r.out, r
    r = run(kube, "experiment", "logs", "--json", complete_name := f"{exp['metadata']['name']}-nope", cwd=project)
    assert r.code == 2 and complete_name in r.err, r


@pytest.fixture(scope="module")
def local_doc(tmp_path_factory):
    """A status document written by the local engine, the shape the cluster side must match."""
    root = tmp_path_factory.mktemp("local-shape")
    (root / "mlops.yaml").write_text("project: shape-test\n")
    spec = write_experiment(root / "exp", name="shape", max_trials=2)
    assert run_mlops("experiment", "run", "--local", str(spec), cwd=root).code == 0
    return json.loads((root / ".mlops" / "experiments" / "shape" / "experiment.json").read_text())


s3 = s3_server  # moto's S3 server (module fixture of tests/test_s3.py)


def test_data_line_runs_the_experiment_on_katib(kube, project, s3):
    from tests.test_s3 import AWS

    config = project / "mlops.yaml"
    config.write_text(config.read_text().replace("  namespace: kubeflow\n", "  namespace: kubeflow\n  engine: katib\n", 1))
    # the data goes to S3 (moto): the trials pull it from there
    s3_env = {**AWS, "AWS_ENDPOINT_URL": s3.endpoint}
    proc = start(kube, "line", "data", "--json", cwd=project, env=s3_env)
    kube.wait_for_request(lambda r: r["watch"] and r["path"].endswith("/experiments"))
    (exp,) = kube.items(*EXP)
    trials = complete(kube, exp)
    code, out, err = finish(proc)
    assert code == 0, err
    result = json.loads(out)
    assert result["engine"] == "katib" and result["status"] == "completed"
    assert result["experiment"] == exp["metadata"]["name"]
    assert result["best_trial"]["name"] == trials[1]["metadata"]["name"]
    assert result["notification"]["via"] == "log"
    assert result["image"] == exp["metadata"]["annotations"]["mlops.io/image"] == pod_template(exp)["containers"][0]["image"]
    r = run_mlops("line", "data", "--json", cwd=project, env={**env_for(kube), **s3_env})
    assert r.code == 0 and r.json()["status"] == "unchanged", r
    assert len(kube.items(*EXP)) == 1


# -- the trials' image and data (pyhelpers/experiment/trial_wiring.py, docs/cluster.md) -------------
AWS_CANARY = "CANARY-aws-in-katib-test-3f1"


def pod_template(exp: dict) -> dict:
    return exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]


def test_submit_wires_the_image_of_this_data_and_commit_and_the_data(kube, project):
    from pyhelpers.config import load_config
    from pyhelpers.data import data_version
    from pyhelpers.experiment.trial_wiring import image_ref

    r = run_mlops("experiment", "submit", "--json", cwd=project,
                  env={**env_for(kube), "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": AWS_CANARY})
    assert r.code == 0, r
    cfg = load_config(project / "mlops.yaml", environ={})
    commit = git(project, "rev-parse", "HEAD").strip()
    version = data_version(cfg, "HEAD")
    ref = image_ref("registry.example.com/ml/taxi-fare-train", version, commit)
    assert ref == f"registry.example.com/ml/taxi-fare-train:{version}-{commit[:8]}"  # mlopsImage's tag rule
    exp = kube.get(*EXP[:2], NS, r.json()["name"])
    assert r.json()["image"] == ref and exp["metadata"]["annotations"]["mlops.io/image"] == ref
    pod = pod_template(exp)
    (primary,) = pod["containers"]
    assert primary["image"] == ref
    assert primary["volumeMounts"] == [{"name": "mlops-data", "mountPath": "/app/data/trips", "subPath": "data/trips",
                                        "readOnly": True}]
    assert pod["volumes"] == [{"name": "mlops-data", "emptyDir": {}}]
    (init,) = pod["initContainers"]
    assert init["name"] == "mlops-data" and init["image"] == ref
    assert init["envFrom"] == [{"secretRef": {"name": "mlops-data"}}]  # experiment.data_secret's default
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["MLOPS_DVC_REMOTE_URL"] == REMOTE and env["MLOPS_DATA_VERSION"] == version
    assert yaml.safe_load(env["MLOPS_DVC_FILE_0"]) == yaml.safe_load(git(project, "show", "HEAD:data/trips.dvc"))
    assert "dvc pull data/trips.dvc" in init["command"][-1]
    text = json.dumps(exp)
    assert AWS_CANARY not in text and "AWS_SECRET_ACCESS_KEY" not in text  # credentials only by Secret name


def test_submit_with_an_explicit_image_and_refusals(kube, project):
    r = run(kube, "experiment", "submit", "--json", "--image", "ghcr.io/acme/train:v1@sha256:" + "a" * 64, cwd=project)
    assert r.code == 0, r
    exp = kube.get(*EXP[:2], NS, r.json()["name"])
    assert {c["image"] for c in [*pod_template(exp)["containers"], *pod_template(exp)["initContainers"]]} == \
        {"ghcr.io/acme/train:v1@sha256:" + "a" * 64}
    kube.requests.clear()
    r = run(kube, "experiment", "submit", "--name", "other", "--image", "no tag here", cwd=project)
    assert r.code == 2 and "--image" in r.err and "'no tag here'" in r.err, r
    # a remote that is a folder of this machine cannot feed trials on a cluster
    r = run_mlops("experiment", "submit", "--name", "other", cwd=project,
                  env={"KUBECONFIG": str(kube.kubeconfig_path), "MLOPS_K8S_NAMESPACE": NS})
    assert r.code == 2 and "data.remote_url" in r.err and "s3://" in r.err, r
    # a data version that is not the commit's: the Experiment would name one and pull another
    r = run(kube, "experiment", "submit", "--name", "other", "--data-version", "dv-000000000000", cwd=project)
    assert r.code == 2 and "dv-000000000000" in r.err, r
    config = project / "mlops.yaml"
    config.write_text(config.read_text().replace("  name: registry.example.com/ml/taxi-fare-train\n", ""))
    r = run(kube, "experiment", "submit", "--name", "other", cwd=project)
    assert r.code == 2 and "image.name" in r.err, r
    assert not [q for q in kube.requests if q["method"] == "POST"]


def test_dry_run_prints_the_experiment_and_the_first_trial_as_katib_renders_it(kube, project):
    r = run(kube, "experiment", "submit", "--dry-run", "--json", cwd=project)
    assert r.code == 0, r
    assert not kube.requests  # nothing reaches the cluster
    out = r.json()
    exp, trial = out["experiment"], out["trial"]
    assert out["status"] == "dry-run" and exp["metadata"]["namespace"] == NS
    run_spec = trial["runSpec"]
    # Katib's generator: metadata name/namespace of the Trial, every placeholder substituted
    assert run_spec["metadata"] == {"name": trial["name"], "namespace": NS}
    assert trial["name"].startswith(exp["metadata"]["name"] + "-") and len(trial["name"]) == len(exp["metadata"]["name"]) + 9
    assert "${trialParameters" not in json.dumps(run_spec)
    command = run_spec["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--learning-rate=0.02" in command and "--loss=squared_error" in command  # the feasible minimum / first
    assert {a["name"]: a["value"] for a in trial["parameterAssignments"]}["n-estimators"] == "40"
    assert out["schema"]["validated"] is True and out["schema"]["kubernetes"]
    human = run(kube, "experiment", "submit", "--dry-run", cwd=project)
    assert human.code == 0 and "# Experiment (not submitted)" in human.out and "valid Job (Kubernetes" in human.out


def test_run_spec_schema_check_refuses_what_the_api_server_would():
    from pyhelpers.errors import BadInput
    from pyhelpers.experiment.trial_wiring import run_spec, validate_run_spec

    exp = {"metadata": {"name": "e", "namespace": "ns"}, "spec": {
        "parameters": [{"name": "lr"}],
        "trialTemplate": {"primaryContainerName": "main", "trialParameters": [{"name": "lr", "reference": "lr"}],
                          "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {
                              "activeDeadlineSeconds": "${trialParameters.lr}",
                              "template": {"spec": {"restartPolicy": "Never", "containers": [
                                  {"name": "main", "image": "i:1", "args": ["--lr=${trialParameters.lr}"]}]}}}}}}}
    rendered = run_spec(exp, {"lr": "60"}, "e-abcdefgh")
    assert rendered["metadata"] == {"name": "e-abcdefgh", "namespace": "ns"}
    assert rendered["spec"]["template"]["spec"]["containers"][0]["args"] == ["--lr=60"]
    # Katib substitutes text: "60" stays a string, which the API server refuses for an integer field
    with pytest.raises(BadInput, match=r"spec\.activeDeadlineSeconds: '60' is not of type 'integer'"):
        validate_run_spec(rendered)
    del rendered["spec"]["activeDeadlineSeconds"]
    assert validate_run_spec(rendered)["validated"] is True


def test_wiring_reaches_every_pod_template_of_the_primary_container_and_refuses_the_rest():
    from pyhelpers.errors import BadInput
    from pyhelpers.experiment.trial_wiring import image_ref, validate_run_spec, wire

    def replica(name: str) -> dict:
        return {"replicas": 1, "template": {"spec": {"containers": [{"name": name, "image": "old"}]}}}

    pytorch = {"trialTemplate": {"primaryContainerName": "pytorch", "trialSpec": {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "spec": {"pytorchReplicaSpecs": {"Master": replica("pytorch"), "Worker": replica("pytorch")}}}}}
    data = {"pointers": [{"dvc_file": "data/trips.dvc", "text": "outs: []\n", "outs": ["data/trips"]}],
            "data_version": "dv-1", "remote_url": "s3://b/p", "secret": "s", "project_dir": "/app"}
    wired = wire(pytorch, "r/x:t", data)
    for role in ("Master", "Worker"):
        pod = wired["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]
        assert pod["containers"][0]["image"] == "r/x:t" and pod["initContainers"][0]["name"] == "mlops-data"
    assert pytorch["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"] == \
        {"containers": [{"name": "pytorch", "image": "old"}]}  # the input is not changed
    assert validate_run_spec(wired["trialTemplate"]["trialSpec"])["validated"] is False  # a CRD: the cluster checks it
    trainjob = {"trialTemplate": {"primaryContainerName": "node", "trialSpec": {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {"trainer": {"image": "old"}}}}}
    with pytest.raises(BadInput, match="TrainJob"):
        wire(trainjob, "r/x:t", data)
    with pytest.raises(BadInput, match="not a git commit"):
        image_ref("r/x", "dv-1", "HEAD")
    with pytest.raises(BadInput, match="image repository"):
        image_ref("Registry/X", "dv-1", "0123456789ab")


def test_the_agent_trains_on_exactly_the_experiments_data_version(project):
    """Line 2 in cluster mode: missing data is pulled; another data version is refused, never trained on."""
    import shutil

    from pyhelpers import data
    from pyhelpers.config import load_config
    from pyhelpers.errors import BadInput
    from pyhelpers.experiment.trial_wiring import ensure_agent_data

    cfg = load_config(project / "mlops.yaml", environ={})
    version = data.data_version(cfg, "HEAD")
    data.push(cfg)
    shutil.rmtree(project / "data" / "trips")  # a fresh agent workspace: the .dvc files, not the data
    shutil.rmtree(project / ".dvc" / "cache")
    assert ensure_agent_data(cfg, version)["pulled"] is True
    assert (project / "data" / "trips").is_dir() and data.status(cfg)["workspace_clean"]
    assert ensure_agent_data(cfg, version)["pulled"] is False
    with pytest.raises(BadInput, match="tuned on dv-000000000000"):
        ensure_agent_data(cfg, "dv-000000000000")
