"""`mlops deploy wait`: Argo CD Application status through the Kubernetes API (tests/fakes/k8s.py).

For deploy.target kserve the Argo CD stand-in (tests/fakes/argocd_controller.py) syncs the GitOps
branch and assesses the InferenceService's health with Argo CD's built-in rules
(tests/fakes/argocd_health.py); failure states are scripted with the same rules.

The real kubernetes client (watch included) follows an ``applications.argoproj.io`` object whose
status is scripted here the way Argo CD's controller writes it: a refresh first moves
``sync.revision`` (OutOfSync, old health, old operation), then the sync operation runs, then health
is assessed. The GitOps repository is a real bare repository; the kubeconfig's token is a canary.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pyhelpers.config import load_config
from pyhelpers.deploy.gitops import push_manifests
from pyhelpers.deploy.render import render_application, render_manifests
from tests.conftest import BIN, MLOPS, run_mlops
from tests.fakes.argocd_controller import ArgoCDStandIn
from tests.fakes.argocd_health import KNATIVE_CONDITIONS, STANDARD_CONDITIONS, inference_service_health, isvc_condition
from tests.fakes.k8s import KubeServer
from tests.test_deploy_render import champion

CANARY = "k8s-CANARY-argocd-7c41"
API = "argoproj.io/v1alpha1"
NS, APP = "argocd", "taxi-fare"


@pytest.fixture
def kube(tmp_path):
    with KubeServer(token=CANARY) as server:
        server.kubeconfig_path = server.kubeconfig(tmp_path / "kubeconfig")
        yield server


@pytest.fixture
def project(tmp_path):
    """A project whose GitOps repository (local bare) has version 1 then version 2 of the manifest."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlops.yaml").write_text("project: taxi-fare\n")
    cfg = load_config(root / "mlops.yaml", environ={})
    commits = [push_manifests(cfg, render_manifests(cfg, champion(root, version=v, model_uri=f"models:/taxi-fare/{v}")),
                              f"Deploy taxi-fare version {v}")["commit"] for v in ("1", "2")]
    bare = root / ".mlops" / "gitops.git"
    subprocess.run(["git", "config", "receive.denyNonFastForwards", "true"], cwd=bare, check=True)  # no force push
    return {"root": root, "cfg": cfg, "old": commits[0], "new": commits[1], "bare": bare}


def status(revision: str, sync: str = "Synced", phase: str = "Succeeded", op_revision: str | None = None,
           health: str = "Healthy", message: str = "successfully synced (all tasks run)",
           finished: str = "2024-05-01T10:00:05Z", reconciled: str = "2024-05-01T10:00:06Z",
           health_message: str | None = None, sync_failures: list[dict] | None = None) -> dict:
    """``status`` of an Application as Argo CD's controller writes it (one source, auto-sync)."""
    op_revision = op_revision or revision
    resource = {"group": "machinelearning.seldon.io", "version": "v1", "kind": "SeldonDeployment",
                "namespace": "models", "name": APP, "status": sync,
                "health": {"status": health, **({"message": health_message} if health_message else {})}}
    return {
        "sync": {"status": sync, "revision": revision,
                 "comparedTo": {"source": {"repoURL": "x", "path": "apps/taxi-fare", "targetRevision": "main"}}},
        "health": {"status": health},
        "operationState": {
            "operation": {"sync": {"revision": op_revision}, "initiatedBy": {"automated": True}},
            "phase": phase, "message": message, "startedAt": "2024-05-01T10:00:00Z",
            **({"finishedAt": finished} if phase != "Running" else {}),
            "syncResult": {"revision": op_revision, "resources": sync_failures or []},
        },
        "reconciledAt": reconciled,
        "resources": [resource],
    }


def put_app(kube: KubeServer, cfg, st: dict) -> None:
    app = render_application(cfg)
    kube.put({**app, "status": st}, "applications")


def env_for(kube: KubeServer) -> dict:
    return {"KUBECONFIG": str(kube.kubeconfig_path)}


def run(kube, project, *args):
    r = run_mlops("deploy", "wait", *args, cwd=project["root"], env=env_for(kube), timeout=120)
    assert CANARY not in r.out + r.err
    return r


class Waiting:
    """`mlops deploy wait` in the background; its stderr lines are collected as they come."""

    def __init__(self, kube, project, *args):
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "SLACK_"))}
        env = {**inherited, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env_for(kube)}
        self.proc = subprocess.Popen([MLOPS, "deploy", "wait", "--json", *args], cwd=project["root"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def saw(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(text in line for line in self.lines):
                assert self.proc.poll() is None or self.reader.is_alive(), f"exited: {''.join(self.lines)}"
                left = deadline - time.monotonic()
                assert left > 0, f"never logged {text!r}: {''.join(self.lines)}"
                self.cond.wait(min(left, 0.2))

    def finish(self) -> tuple[int, str, str]:
        out = self.proc.stdout.read()
        self.proc.wait(timeout=120)
        self.reader.join(timeout=10)
        err = "".join(self.lines)
        assert CANARY not in out + err
        return self.proc.returncode, out, err


def watching(kube, since: int = 0) -> dict:
    return kube.wait_for_request(lambda r: r["watch"] and r["path"].endswith("/applications") and r["n"] >= since)


def test_old_revision_healthy_is_not_success_and_the_pushed_one_is(kube, project):
    import json

    old, new = project["old"], project["new"]
    put_app(kube, project["cfg"], status(old))  # deployed and Healthy, but the old commit
    w = Waiting(kube, project)  # default: the head of the GitOps branch, i.e. `new`
    watching(kube)
    # Argo CD's refresh: sync.revision is new but OutOfSync; the last operation (Succeeded) and health are old.
    # revision + phase + health alone would call this deployed.
    kube.patch(API, "applications", NS, APP, {"status": status(new, sync="OutOfSync", op_revision=old)})
    kube.patch(API, "applications", NS, APP, {"status": status(new, sync="OutOfSync", phase="Running",
                                                                 message="waiting for healthy state")})
    # the sync finished, but health was last assessed before it (still the old pods)
    kube.patch(API, "applications", NS, APP, {"status": status(new, finished="2024-05-01T10:01:05Z",
                                                                 reconciled="2024-05-01T10:01:00Z")})
    w.saw("health not yet assessed after the sync")
    time.sleep(0.3)  # a wrong verdict on any of these states would have ended the process by now
    assert w.proc.poll() is None, "reported success before Argo CD deployed the pushed commit"
    kube.patch(API, "applications", NS, APP, {"status": status(new, health="Progressing", finished="2024-05-01T10:01:05Z",
                                                                 reconciled="2024-05-01T10:01:06Z")})
    kube.patch(API, "applications", NS, APP, {"status": status(new, finished="2024-05-01T10:01:05Z",
                                                                 reconciled="2024-05-01T10:01:09Z")})
    code, out, err = w.finish()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["deployed"] is True and doc["revision"] == new and doc["revision_source"] == "head of main"
    assert doc["sync"] == {"status": "Synced", "revision": new} and doc["health"]["status"] == "Healthy"
    assert f"OutOfSync at {new[:12]}" in err and "operation Running" in err
    assert sum(q["method"] == "GET" for q in kube.requests) <= 3  # one list, one watch: no polling


def test_watch_expiry_resumes_and_explicit_revision(kube, project):
    new = project["new"]
    put_app(kube, project["cfg"], status(new, sync="OutOfSync", op_revision=project["old"]))
    w = Waiting(kube, project, "--revision", new[:10].upper())
    first = watching(kube)
    kube.patch(API, "applications", NS, APP, {"status": status(new, sync="OutOfSync", phase="Running")})
    kube.expire_watches()  # history compacted: resuming from the old resourceVersion answers 410
    watching(kube, first["n"] + 1)
    kube.patch(API, "applications", NS, APP, {"status": status(new)})
    code, out, err = w.finish()
    assert code == 0, err
    assert any(q.get("expired") for q in kube.requests), "the client never resumed from a stale resourceVersion"
    assert "410" in err and "resuming" in err


def test_a_later_commit_of_another_pipeline_contains_ours(kube, project):
    cfg = project["cfg"]
    later = push_manifests(cfg, {"apps/other-project/seldondeployment.yaml": "kind: SeldonDeployment\n"},
                           "Deploy other-project version 7")["commit"]  # shares the GitOps repository
    put_app(kube, cfg, status(later))
    r = run(kube, project, "--revision", project["new"], "--json")
    assert r.code == 0 and r.json()["deployed"] and r.json()["sync"]["revision"] == later, r
    assert f"a later commit of main that contains {project['new'][:12]}" in r.err
    # ...but a revision that does not contain ours (the previous one) is never taken for it
    put_app(kube, cfg, status(project["old"]))
    r = run(kube, project, "--revision", project["new"], "--timeout-minutes", "0.01")
    assert r.code == 1 and "not deployed after 0.6s" in r.err, r


def test_degraded_and_failed_operation_end_with_argo_cds_reason(kube, project):
    new = project["new"]
    put_app(kube, project["cfg"], status(new, sync="OutOfSync", phase="Running"))
    w = Waiting(kube, project)
    watching(kube)
    kube.patch(API, "applications", NS, APP, {"status": status(
        new, health="Degraded", health_message="predictor default: 0/1 replicas available, CrashLoopBackOff")})
    code, out, err = w.finish()
    assert code == 1, err
    assert "health Degraded" in err and "CrashLoopBackOff" in err and "SeldonDeployment models/taxi-fare" in err
    assert err.strip().splitlines()[-1].startswith("mlops: error: not deployed")  # what Jenkins shows

    failure = [{"kind": "SeldonDeployment", "namespace": "models", "name": APP, "status": "SyncFailed",
                "message": 'admission webhook "v1.vseldondeployment.kb.io" denied the request: bad graph'}]
    put_app(kube, project["cfg"], status(new, sync="OutOfSync", phase="Failed", health="Healthy",
                                         message="one or more objects failed to apply", sync_failures=failure))
    r = run(kube, project, "--json")
    assert r.code == 1, r
    doc = r.json()
    assert doc["deployed"] is False and doc["outcome"] == "failed"
    assert doc["reason"].startswith("sync operation Failed: one or more objects failed to apply")
    assert "admission webhook" in doc["reason"] and "rollback" not in doc


def test_timeout_and_an_old_operations_failure_is_not_ours(kube, project):
    # the previous commit's sync failed; ours is not synced yet: neither success nor our failure
    put_app(kube, project["cfg"], status(project["new"], sync="OutOfSync", phase="Failed", op_revision=project["old"],
                                         message="old failure"))
    started = time.monotonic()
    r = run(kube, project, "--timeout-minutes", "0.02")
    assert r.code == 1, r
    assert "not deployed after 1.2s" in r.err and "OutOfSync" in r.err and "sync operation Failed" not in r.err, r
    assert time.monotonic() - started < 30


def test_bad_input_is_exit_2(kube, project):
    r = run(kube, project, "--revision", "main")
    assert r.code == 2 and "--revision: 'main' is not a commit SHA" in r.err, r
    r = run(kube, project)  # no Application yet
    assert r.code == 2 and "argocd.application: no Application 'taxi-fare' in namespace 'argocd'" in r.err, r


def test_rollback_on_failure_reverts_the_commit_and_moves_the_alias_back(kube, project):
    from mlflow import MlflowClient

    from pyhelpers.model import registry, tracking

    cfg, root, bare = project["cfg"], project["root"], project["bare"]
    client = tracking.connect(cfg)
    client.create_registered_model("taxi-fare")
    for _ in range(2):
        model_dir = root / "models" / str(_)
        model_dir.mkdir(parents=True)
        client.create_model_version("taxi-fare", str(model_dir))
    registry.promote(cfg, "1")
    registry.promote(cfg, "2")
    put_app(kube, cfg, status(project["new"], sync="OutOfSync", phase="Failed",
                              message="one or more synchronization tasks completed unsuccessfully"))

    r = run(kube, project, "--rollback-on-failure", "--json")
    assert r.code == 1, r
    rb = r.json()["rollback"]
    assert rb["gitops"]["changed"] and rb["gitops"]["reverted"] == project["new"]
    assert rb["champion"] == {"moved": True, "version": "1", "previous": "2"}
    history = subprocess.run(["git", "log", "--format=%H %P", "main"], cwd=bare, capture_output=True, text=True,
                             check=True).stdout.split("\n")
    revert = rb["gitops"]["commit"]
    # a new commit on top: both deployments stay in history (denyNonFastForwards would refuse a force push)
    assert history[:3] == [f"{revert} {project['new']}", f"{project['new']} {project['old']}", f"{project['old']} "]
    show = lambda rev: subprocess.run(["git", "show", f"{rev}:{cfg.gitops_path}"], cwd=bare,  # noqa: E731
                                      capture_output=True, text=True, check=True).stdout
    assert show(revert) == show(project["old"]) and "model-version: '1'" in show(revert)
    assert str(MlflowClient(cfg.tracking_uri).get_model_version_by_alias("taxi-fare", "champion").version) == "1"
    assert "rolling back GitOps commit" in r.err

    # again for the same commit (in-process: MLflow is imported already): nothing more to revert, and
    # the alias, no longer on the failed version, stays where it is
    from pyhelpers.deploy import argocd

    rb2 = argocd.rollback(cfg, project["new"], "Degraded again")
    assert rb2["gitops"]["changed"] is False and rb2["gitops"]["commit"] == revert
    assert rb2["champion"]["moved"] is False and "not the failed version 2" in rb2["champion"]["reason"]
    assert str(MlflowClient(cfg.tracking_uri).get_model_version_by_alias("taxi-fare", "champion").version) == "1"
    leaked = [p for p in Path(root).rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert not leaked


# -- deploy.target: kserve -------------------------------------------------------------------------
def isvc(conditions=None, transition=None) -> dict:
    obj = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "m"}}
    if conditions is not None or transition is not None:
        obj["status"] = {}
        if conditions is not None:
            obj["status"]["conditions"] = conditions
        if transition is not None:
            obj["status"]["modelStatus"] = {"transitionStatus": transition}
    return obj


@pytest.mark.parametrize("obj,health", [
    (isvc(), "Progressing"),                                                    # no status yet
    (isvc([isvc_condition(c) for c in KNATIVE_CONDITIONS], "UpToDate"), "Healthy"),
    (isvc([isvc_condition(c) for c in STANDARD_CONDITIONS]), "Healthy"),       # Standard (raw) mode: 3 conditions
    (isvc([isvc_condition("PredictorReady", "Unknown", "RevisionMissing"), isvc_condition("Ready", "Unknown")],
          "InProgress"), "Progressing"),
    # a False condition alone is Progressing for Argo CD; only a failed model transition is Degraded
    (isvc([isvc_condition("PredictorReady", "False", "RevisionFailed"), isvc_condition("Ready", "False")]), "Progressing"),
    (isvc([isvc_condition("PredictorReady", "False", "RevisionFailed"), isvc_condition("Ready", "False")],
          "BlockedByFailedLoad"), "Degraded"),
    (isvc([isvc_condition("Ready"), isvc_condition("Stopped", "True")]), "Suspended"),
    (isvc([isvc_condition("Ready"), isvc_condition("Stopped", "False")]), "Healthy"),  # Stopped=False is healthy
])
def test_the_stand_ins_inference_service_health_is_argo_cds(obj, health):
    assert inference_service_health(obj)["status"] == health


def test_inference_service_health_message_names_the_unready_conditions():
    obj = isvc([isvc_condition("IngressReady"), isvc_condition("PredictorReady", "False", "RevisionFailed", "boom"),
                isvc_condition("Ready", "False", "RevisionFailed")], "BlockedByFailedLoad")
    assert inference_service_health(obj)["message"] == (
        "0: transitionStatus | BlockedByFailedLoad | 2: PredictorReady | False | RevisionFailed | boom"
        " | 3: Ready | False | RevisionFailed")


@pytest.fixture
def kserve_project(tmp_path):
    """A kserve project whose GitOps repository (local bare) holds version 1 of its InferenceService."""
    from pyhelpers.deploy import publish

    root = tmp_path / "ksproj"
    root.mkdir()
    (root / "mlops.yaml").write_text("project: taxi-fare\ndeploy:\n  target: kserve\n  deployment_mode: Standard\n")
    cfg = load_config(root / "mlops.yaml", environ={})
    pushed = publish.push(cfg, render_manifests(cfg, champion(root, version="1", model_uri="models:/taxi-fare/1")),
                          "Deploy taxi-fare version 1")
    return {"root": root, "cfg": cfg, "new": pushed["commit"], "bare": root / ".mlops" / "gitops.git"}


def _validator():
    from tests import crds

    return crds.validate if crds.CRDS_DIR.is_dir() else None


def test_kserve_deployed_reports_the_inference_services_url(kube, kserve_project):
    cfg = kserve_project["cfg"]
    kube.put(render_application(cfg), "applications")
    with ArgoCDStandIn(kube, kserve_project["bare"], APP, NS, validate=_validator()) as argocd:
        r = run(kube, kserve_project, "--json")
        assert r.code == 0, r
    doc = r.json()
    assert doc["deployed"] and doc["revision"] == kserve_project["new"]
    assert argocd.history[-1]["kinds"] == ["InferenceService"] and argocd.history[-1]["health"] == "Healthy"
    served = kube.get("serving.kserve.io/v1beta1", "inferenceservices", "models", "taxi-fare")
    assert served["spec"]["predictor"]["model"]["modelFormat"] == {"name": "mlflow"}  # what was pushed got applied
    assert doc["inference_service"] == doc["inference_service"] | {
        "name": "taxi-fare", "namespace": "models", "found": True, "ready": True,
        "url": "http://taxi-fare.models.example.com", "model_version": "1", "problems": []}
    human = run(kube, kserve_project)
    assert "InferenceService models/taxi-fare: http://taxi-fare.models.example.com" in human.out, human


def failed_load(name: str, ns: str = "models") -> dict:
    """An InferenceService's status when its model cannot be loaded, as KServe v0.20 writes it
    (UpdateModelRevisionStates FailedToLoad -> BlockedByFailedLoad, lastFailureInfo; the revision's
    conditions False with Knative's RevisionFailed)."""
    failing = ("PredictorConfigurationReady", "PredictorReady", "Ready")
    message = f'Revision "{name}-predictor-00002" failed with message: Container failed with: model load error.'
    return {"conditions": [isvc_condition(c, "False", "RevisionFailed", message) if c in failing
                           else isvc_condition(c) for c in KNATIVE_CONDITIONS],
            "modelStatus": {"transitionStatus": "BlockedByFailedLoad",
                            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
                            "lastFailureInfo": {"reason": "ModelLoadFailed",
                                                "message": "no MLmodel found at the storage URI"}}}


def test_kserve_failed_model_load_is_degraded_with_kserves_reason_and_rolls_back(kube, kserve_project):
    import yaml

    from pyhelpers.deploy import publish

    cfg, root = kserve_project["cfg"], kserve_project["root"]
    second = publish.push(cfg, render_manifests(cfg, champion(root, version="2")), "Deploy taxi-fare version 2")["commit"]
    # what the cluster holds after Argo CD applied version 2: the InferenceService KServe cannot load
    manifest = yaml.safe_load(render_manifests(cfg, champion(root, version="2"))[cfg.gitops_path])
    served = {**manifest, "status": failed_load("taxi-fare")}
    kube.put(served, "inferenceservices")
    health = inference_service_health(served)
    assert health["status"] == "Degraded"  # Argo CD's own verdict for this status
    st = status(second, health="Degraded", health_message=health["message"])
    st["resources"][0].update(group="serving.kserve.io", version="v1beta1", kind="InferenceService")
    put_app(kube, cfg, st)
    r = run(kube, {"root": root}, "--json", "--rollback-on-failure")
    assert r.code == 1, r
    doc = r.json()
    assert doc["revision"] == second and doc["outcome"] == "failed" and doc["health"]["status"] == "Degraded"
    # Argo CD's message lists the conditions; what KServe says about the model comes from the InferenceService
    assert "0: transitionStatus | BlockedByFailedLoad" in doc["reason"]
    assert "InferenceService models/taxi-fare: " in doc["reason"]
    assert "model ModelLoadFailed: no MLmodel found at the storage URI" in doc["reason"]
    assert doc["inference_service"]["ready"] is False and doc["inference_service"]["url"] is None
    rb = doc["rollback"]
    assert rb["gitops"]["changed"] and rb["gitops"]["reverted"] == second
    show = subprocess.run(["git", "show", f"main:{cfg.gitops_path}"], cwd=kserve_project["bare"], capture_output=True,
                          text=True, check=True).stdout
    assert "mlops.io/model-version: '1'" in show  # the InferenceService of version 1 is back


def test_kserve_unreadable_inference_service_leaves_argo_cds_verdict(kube, kserve_project):
    cfg = kserve_project["cfg"]
    kube.put(render_application(cfg), "applications")
    kube.fail("GET", r"/inferenceservices$", code=403, times=10)
    with ArgoCDStandIn(kube, kserve_project["bare"], APP, NS):
        r = run(kube, kserve_project, "--json")
    assert r.code == 0, r
    isvc_doc = r.json()["inference_service"]
    assert isvc_doc["found"] is None and "403" in isvc_doc["error"] and "k8s/rbac.yaml" in isvc_doc["error"]
