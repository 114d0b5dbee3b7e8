"""Argo CD stand-in for the cluster rehearsal: an application controller over a GitOps bare
repository and a ``KubeServer``.

For the Application ``name`` in ``namespace`` it does what Argo CD's controller does with an
automated sync policy (argo-cd ``controller/appcontroller.go``, ``controller/sync.go``):
- polls ``spec.source.targetRevision`` of the repository (here: the bare repository the git HTTP
  stand-in serves) and, on a new commit, reads every manifest under ``spec.source.path``;
- syncs: a manifest its CRD refuses (``validate``: the upstream CRD schema in ../shared/crds) makes
  the operation Failed ("one or more objects failed to apply") and the app OutOfSync; else the
  operation Succeeds, the app is Synced at that revision and the resources are applied to the
  ``KubeServer``; resources no longer in git are pruned (``syncPolicy.automated.prune``);
- health: the serving operator reports the model server up (Seldon: ``status.state: Available``;
  KServe: Ready conditions), then Argo CD's health checks (the Lua check for SeldonDeployment that
  k8s/ installs; KServe's built-in one, restated in tests/fakes/argocd_health.py) give Healthy,
  assessed after the operation (``reconciledAt``).
``history`` lists (revision, phase, health, kinds, errors) for assertions.
"""

from __future__ import annotations

import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path

import yaml

from tests.fakes.argocd_health import application_health, inference_service_health, isvc_condition
from tests.fakes.k8s import KubeServer


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(repo: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def ready(doc: dict) -> tuple[dict, dict]:
    """(status the serving operator writes once the model server is up, Argo CD's health of it)."""
    if doc["kind"] == "SeldonDeployment":  # k8s/ health check: status.state Available -> Healthy
        return {"state": "Available"}, {"status": "Healthy"}
    if doc["kind"] == "InferenceService":
        status = {"conditions": [isvc_condition(t) for t in ("IngressReady", "PredictorReady", "Ready")],
                  "url": f"http://{doc['metadata']['name']}.{doc['metadata'].get('namespace', 'default')}.example.com",
                  "modelStatus": {"transitionStatus": "UpToDate", "states": {"activeModelState": "Loaded"}}}
        return status, inference_service_health({**doc, "status": status})
    return {}, {"status": "Healthy"}


class ArgoCDStandIn:
    def __init__(self, kube: KubeServer, repo: Path, name: str, namespace: str = "argocd", validate=None,
                 poll: float = 0.1):
        self.kube, self.repo, self.name, self.namespace = kube, Path(repo), name, namespace
        self.validate = validate or (lambda doc: [])
        self.poll = poll
        self.history: list[dict] = []
        self.applied: dict[tuple[str, str, str], dict] = {}
        self.seen: str | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)

    def _loop(self) -> None:
        while not self.stop.is_set():
            app = self.kube.get("argoproj.io/v1alpha1", "applications", self.namespace, self.name)
            if app is not None:
                source = app["spec"]["source"]
                head = (_git(self.repo, "rev-parse", f"refs/heads/{source['targetRevision']}") or "").strip()
                if head and head != self.seen:
                    self.seen = head
                    self.sync(app, head)
            self.stop.wait(self.poll)

    def sync(self, app: dict, revision: str) -> None:
        source = app["spec"]["source"]
        folder = source.get("path") or "."
        listing = _git(self.repo, "ls-tree", "-r", "--name-only", revision, "--", folder) or ""
        docs, errors = [], []
        for path in (p for p in listing.split() if p.endswith((".yaml", ".yml"))):
            for doc in yaml.safe_load_all(_git(self.repo, "show", f"{revision}:{path}") or ""):
                if not isinstance(doc, dict) or doc.get("kind") == "Application":
                    continue  # the Application manifest lives beside it; Argo CD does not apply itself
                docs.append(doc)
                errors += [f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}: {e}" for e in self.validate(doc)]
        operation = {"operation": {"sync": {"revision": revision}, "initiatedBy": {"automated": True}},
                     "startedAt": _now(), "finishedAt": _now(), "syncResult": {"revision": revision, "resources": []}}
        destination = app["spec"].get("destination", {}).get("namespace", "default")
        resources, healths = [], []
        if errors:
            status = {"sync": {"status": "OutOfSync", "revision": revision}, "health": {"status": "Missing"},
                      "operationState": {**operation, "phase": "Failed",
                                         "message": "one or more objects failed to apply, reason: " + "; ".join(errors)},
                      "reconciledAt": _now(), "resources": []}
        else:
            wanted = {}
            for d in docs:
                d.setdefault("metadata", {}).setdefault("namespace", destination)
                plural = d["kind"].lower() + "s"
                key = (d["apiVersion"], plural, d["metadata"]["name"])
                wanted[key] = d
                st, health = ready(d)
                self.kube.put({**d, "status": st}, plural)
                healths.append(health)
                resources.append({"group": d["apiVersion"].split("/")[0], "version": d["apiVersion"].split("/")[-1],
                                  "kind": d["kind"], "namespace": d["metadata"]["namespace"],
                                  "name": d["metadata"]["name"], "status": "Synced", "health": health})
            for key, old in list(self.applied.items()):
                if key not in wanted:  # pruned: gone from git, deleted from the cluster
                    self.kube.remove(old["apiVersion"], key[1], old["metadata"]["namespace"], key[2])
            self.applied = wanted
            status = {"sync": {"status": "Synced", "revision": revision},
                      "health": application_health(healths) if healths else {"status": "Healthy"},
                      "operationState": {**operation, "phase": "Succeeded",
                                         "message": "successfully synced (all tasks run)"},
                      "reconciledAt": _now(), "resources": resources}
        self.history.append({"revision": revision, "phase": status["operationState"]["phase"],
                             "health": status["health"]["status"], "errors": errors,
                             "kinds": [d["kind"] for d in docs]})
        self.kube.patch("argoproj.io/v1alpha1", "applications", self.namespace, self.name, {"status": status})
