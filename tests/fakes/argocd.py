"""An Argo CD stand-in: an application controller that syncs a GitOps branch into the Kubernetes stand-in.

NOTE: reconstructed by the deploy-targets (KServe) session after it overwrote, by mistake, the
uncommitted original of this file written for tests/test_cluster_rehearsal.py; the interface
(``ArgoCDStandIn(kube, gitops_bare, application, namespace, validate=...)``, ``history``) follows
that test's use. Review it against what the original did.

What it does, in the order Argo CD's controller does it (see pyhelpers/deploy/argocd.py for why a
CI wait must not trust health alone):
- polls the Application's ``spec.source`` branch in the GitOps repository; a new head is first a
  refresh: ``sync.revision`` moves to it, OutOfSync, health and last operation still the old ones;
- the automated sync operation runs (Running), validates every manifest under ``spec.source.path``
  with ``validate(doc) -> [errors]`` (an invalid one fails the operation with SyncFailed, as the API
  server's admission refuses it), applies them into the Kubernetes stand-in and prunes what the
  previous revision had and this one has not (``syncPolicy.automated.prune``);
- plays the serving operator: a SeldonDeployment gets ``status.state`` Available, an
  InferenceService KServe's conditions (all True), ``status.url`` and ``modelStatus``
  (``fail_models``: model names whose load fails: BlockedByFailedLoad with lastFailureInfo);
- assesses health after the operation finished: SeldonDeployment with the rules of our Lua check
  (k8s/argocd/argocd-cm-seldon-health.yaml), InferenceService with Argo CD's built-in check
  (tests/fakes/argocd_health.py), the Application's as the worst of its resources'.
"""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from tests.fakes.argocd_health import (
    KNATIVE_CONDITIONS,
    application_health,
    inference_service_health,
    isvc_condition,
)

API = "argoproj.io/v1alpha1"
PLURALS = {"SeldonDeployment": "seldondeployments", "InferenceService": "inferenceservices"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def seldon_health(sdep: dict) -> dict:
    """The rules of k8s/argocd/argocd-cm-seldon-health.yaml (tested with lupa in tests/test_k8s_manifests.py)."""
    status = sdep.get("status") or {}
    if status.get("state") == "Available":
        return {"status": "Healthy", "message": "SeldonDeployment is Available"}
    if status.get("state") == "Failed":
        return {"status": "Degraded", "message": status.get("description") or "SeldonDeployment failed"}
    return {"status": "Progressing", "message": f"state {status.get('state') or 'unknown'}"}


def resource_health(obj: dict) -> dict:
    if obj["kind"] == "InferenceService":
        return inference_service_health(obj)
    if obj["kind"] == "SeldonDeployment":
        return seldon_health(obj)
    return {"status": "Healthy"}


class ArgoCDStandIn:
    def __init__(self, kube, gitops_bare: Path, application: str, namespace: str = "argocd", validate=None,
                 poll: float = 0.2, fail_models: tuple[str, ...] = ()):
        self.kube, self.bare, self.name, self.namespace = kube, Path(gitops_bare), application, namespace
        self.validate, self.poll, self.fail_models = validate, poll, set(fail_models)
        self.history: list[dict] = []
        self.applied: dict[tuple[str, str], dict] = {}  # (kind, name) -> applied object
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.seen: str | None = None

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)

    # -- the controller loop ---------------------------------------------------------------------
    def _app(self) -> dict | None:
        return self.kube.get(API, "applications", self.namespace, self.name)

    def _git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=self.bare, capture_output=True, text=True)

    def _run(self) -> None:
        while not self.stop.wait(self.poll):
            app = self._app()
            if app is None:
                continue
            source = app["spec"]["source"]
            head = self._git("rev-parse", "--verify", "-q", f"refs/heads/{source['targetRevision']}").stdout.strip()
            if head and head != self.seen:
                self.seen = head
                self.sync(app, head)

    def _patch(self, status: dict) -> None:
        self.kube.patch(API, "applications", self.namespace, self.name, {"status": status})

    def manifests(self, revision: str, path: str) -> list[dict]:
        names = self._git("ls-tree", "-r", "--name-only", revision, "--", path).stdout.split()
        docs = []
        for name in names:
            if name.endswith((".yaml", ".yml")):
                docs += [d for d in yaml.safe_load_all(self._git("show", f"{revision}:{name}").stdout) if d]
        return docs

    def sync(self, app: dict, revision: str) -> None:
        source, dest_ns = app["spec"]["source"], app["spec"]["destination"]["namespace"]
        old = app.get("status") or {}
        # 1. refresh: the new revision is known, the cluster is not there yet
        self._patch({"sync": {"status": "OutOfSync", "revision": revision,
                              "comparedTo": {"source": source}}, "reconciledAt": _now()})
        started = _now()
        operation = {"operation": {"sync": {"revision": revision}, "initiatedBy": {"automated": True}},
                     "phase": "Running", "message": "waiting for healthy state", "startedAt": started,
                     "syncResult": {"revision": revision, "resources": []}}
        self._patch({"operationState": operation})
        docs = self.manifests(revision, source["path"])
        failures = []
        for doc in docs:
            errors = self.validate(doc) if self.validate else []
            if errors:
                failures.append({"group": doc["apiVersion"].rpartition("/")[0], "kind": doc["kind"],
                                 "namespace": dest_ns, "name": doc["metadata"]["name"], "status": "SyncFailed",
                                 "message": "; ".join(errors[:3])})
        if failures:
            finished = _now()
            self._patch({"operationState": {**operation, "phase": "Failed", "finishedAt": finished,
                                            "message": "one or more objects failed to apply",
                                            "syncResult": {"revision": revision, "resources": failures}},
                         "reconciledAt": finished})
            self.history.append({"revision": revision, "phase": "Failed", "health": (old.get("health") or {}).get("status")})
            return
        # 2. apply and prune
        wanted = {}
        for doc in docs:
            obj = {**doc, "metadata": {**doc["metadata"], "namespace": doc["metadata"].get("namespace") or dest_ns}}
            wanted[(obj["kind"], obj["metadata"]["name"])] = obj
        for key, obj in self.applied.items():
            if key not in wanted and key[0] in PLURALS:
                self.kube.remove(obj["apiVersion"], PLURALS[key[0]], obj["metadata"]["namespace"], key[1])
        resources = []
        for (kind, name), obj in wanted.items():
            if kind in PLURALS:
                obj = {**obj, "status": self.operator_status(obj)}
                self.kube.put(obj, PLURALS[kind])
            health = resource_health(obj)
            resources.append({"group": obj["apiVersion"].rpartition("/")[0], "version": obj["apiVersion"].rpartition("/")[2],
                              "kind": kind, "namespace": obj["metadata"]["namespace"], "name": name,
                              "status": "Synced", "health": health})
        self.applied = wanted
        finished = _now()
        health = application_health([r["health"] for r in resources])
        time.sleep(0.01)
        self._patch({"sync": {"status": "Synced", "revision": revision, "comparedTo": {"source": source}},
                     "operationState": {**operation, "phase": "Succeeded", "finishedAt": finished,
                                        "message": "successfully synced (all tasks run)"},
                     "health": health, "resources": resources, "reconciledAt": _now()})
        self.history.append({"revision": revision, "phase": "Succeeded", "health": health["status"],
                             "resources": [f"{r['kind']}/{r['name']}" for r in resources]})

    # -- the serving operators ----------------------------------------------------------------------
    def operator_status(self, obj: dict) -> dict:
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        model = (obj.get("metadata", {}).get("annotations") or {}).get("mlops.io/model-name", name)
        if obj["kind"] == "SeldonDeployment":
            if model in self.fail_models:
                return {"state": "Failed", "description": "Deployment does not have minimum availability."}
            return {"state": "Available", "replicas": 1, "availableReplicas": 1}
        if model in self.fail_models:  # KServe: the storage initializer or the runtime could not load it
            failing = ("PredictorConfigurationReady", "PredictorReady", "Ready")
            return {"conditions": [isvc_condition(c, "False", "RevisionFailed",
                                                  f'Revision "{name}-predictor-00001" failed with message: '
                                                  "Container failed with: model load error.")
                                   if c in failing else isvc_condition(c) for c in KNATIVE_CONDITIONS],
                    "modelStatus": {"transitionStatus": "BlockedByFailedLoad",
                                    "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
                                    "lastFailureInfo": {"reason": "ModelLoadFailed",
                                                        "message": "no MLmodel found at the storage URI"}}}
        return {"conditions": [isvc_condition(c) for c in KNATIVE_CONDITIONS],
                "url": f"http://{name}.{ns}.example.com",
                "address": {"url": f"http://{name}-predictor.{ns}.svc.cluster.local"},
                "modelStatus": {"transitionStatus": "UpToDate",
                                "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}},
                "observedGeneration": 1}
