"""Wait until Argo CD has deployed a GitOps commit; roll the commit back when it has not.

The ``applications.argoproj.io`` object (``argocd.namespace`` / ``cfg.argocd_application``) is
followed with a resumable watch (``pyhelpers.k8s.wait_for``). A commit counts as deployed only when
all of these hold at once:

- ``status.sync.revision`` is the commit (or a later commit of the branch containing it: projects
  share GitOps repositories) and ``status.sync.status`` is Synced: Argo CD compared the cluster with it (right after a refresh the revision is new but the app is OutOfSync,
  while health and the last operation still describe the old revision);
- ``status.operationState.phase`` is Succeeded (for this commit, or an older operation when the
  commit needed no sync at all: Synced at the commit says so);
- ``status.health.status`` is Healthy, assessed after that operation finished
  (``status.reconciledAt`` >= ``operationState.finishedAt`` when both are present).

Degraded health at the commit, or a Failed/Error operation for the commit, ends the wait with the
reason Argo CD gives; so does the timeout. Waiting on health alone races the reconcile.

With ``deploy.target: kserve`` the InferenceService's health is Argo CD's built-in check (no Lua
of ours), and the wait then reads the InferenceService itself once: its ``Ready`` condition and
``status.url`` go into the result, and when the deployment failed or timed out, its unready
conditions and ``modelStatus.lastFailureInfo`` (which Argo CD's health message leaves out) go into
the reason.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pyhelpers import k8s
from pyhelpers.errors import BadInput, OperationFailed

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
SHA = re.compile(r"[0-9a-fA-F]{7,40}")


def check_revision(revision: str) -> str:
    if not SHA.fullmatch(revision or ""):
        raise BadInput(f"--revision: {revision!r} is not a commit SHA (7 to 40 hex digits)")
    return revision.lower()


def _same(revision: str | None, target: str) -> bool:
    return bool(revision) and revision.lower().startswith(target)


class Contains:
    """Whether a revision Argo CD reports is the target commit or a later commit of the branch.

    Projects often share one GitOps repository: when another pipeline pushes after ours, Argo CD
    resolves the branch to that later commit, which contains ours. Answers are cached (one git
    fetch per new revision seen).
    """

    def __init__(self, cfg, target: str):
        self.cfg, self.target = cfg, target
        self.known: dict[str, bool] = {}

    def __call__(self, revision: str | None) -> bool:
        if not revision:
            return False
        if _same(revision, self.target):
            return True
        if revision not in self.known:
            from pyhelpers.deploy import gitops

            self.known[revision] = bool(SHA.fullmatch(revision)) and gitops.is_ancestor(self.cfg, self.target, revision)
            if self.known[revision]:
                k8s.log(f"Argo CD is at {revision[:12]}, a later commit of {self.cfg.gitops.branch} "
                        f"that contains {self.target[:12]}")
        return self.known[revision]


def state(app: dict) -> dict[str, Any]:
    """The fields of an Application's status the verdict depends on (absent ones are None)."""
    status = app.get("status") or {}
    sync, health = status.get("sync") or {}, status.get("health") or {}
    op = status.get("operationState") or {}
    result = op.get("syncResult") or {}
    op_revision = result.get("revision") or ((op.get("operation") or {}).get("sync") or {}).get("revision")
    return {
        "sync_status": sync.get("status"),
        "sync_revision": sync.get("revision"),
        "operation_phase": op.get("phase"),
        "operation_revision": op_revision,
        "operation_message": op.get("message"),
        "operation_finished_at": op.get("finishedAt"),
        "health": health.get("status"),
        "health_message": health.get("message"),
        "reconciled_at": status.get("reconciledAt"),
        "failed_resources": [
            f"{r.get('kind')} {r.get('namespace') or ''}/{r.get('name')}: {r.get('message') or r.get('status')}"
            .replace(" /", " ")
            for r in result.get("resources") or []
            if r.get("status") == "SyncFailed" or r.get("hookPhase") in ("Failed", "Error")
        ],
        "unhealthy_resources": [
            f"{r.get('kind')} {r.get('namespace') or ''}/{r.get('name')}: {(r.get('health') or {}).get('message') or ''}"
            .replace(" /", " ").rstrip(": ")
            for r in status.get("resources") or []
            if (r.get("health") or {}).get("status") == "Degraded"
        ],
        "conditions": [f"{c.get('type')}: {c.get('message')}" for c in status.get("conditions") or []],
    }


def verdict(app: dict, target: str, contains=None) -> tuple[str, str]:
    """("deployed" | "failed" | "waiting", reason) of the Application for commit ``target``.

    ``contains(revision)`` says whether a revision includes the target (default: it is the target).
    """
    contains = contains or (lambda revision: _same(revision, target))
    s = state(app)
    at_target = contains(s["sync_revision"])
    op_for_target = contains(s["operation_revision"])
    phase = s["operation_phase"]
    if op_for_target and phase in ("Failed", "Error"):
        details = "; ".join([s["operation_message"] or "no message", *s["failed_resources"]])
        return "failed", f"sync operation {phase}: {details}"
    if not (at_target and s["sync_status"] == "Synced") or (op_for_target and phase in ("Running", "Terminating")):
        return "waiting", describe(s, target)
    # Health counts only once assessed after the sync finished (RFC 3339 UTC stamps compare as strings);
    # right after a sync Argo CD may still show the old pods' health.
    if op_for_target and s["reconciled_at"] and s["operation_finished_at"] \
            and s["reconciled_at"] < s["operation_finished_at"]:
        return "waiting", describe(s, target) + " (health not yet assessed after the sync)"
    if s["health"] == "Degraded":
        details = "; ".join(filter(None, [s["health_message"], *s["unhealthy_resources"]])) or "no message"
        return "failed", f"health Degraded: {details}"
    if phase != "Succeeded" or s["health"] != "Healthy":
        return "waiting", describe(s, target)
    return "deployed", f"Synced and Healthy at {target[:12]}"


def _short(revision: str | None) -> str:
    return revision[:12] if revision else "-"


def describe(s: dict, target: str) -> str:
    text = (f"sync {s['sync_status'] or '-'} at {_short(s['sync_revision'])} (waiting for {target[:12]}), "
            f"operation {s['operation_phase'] or '-'} at {_short(s['operation_revision'])}, "
            f"health {s['health'] or '-'}")
    extra = [m for m in (s["operation_message"] if s["operation_phase"] not in (None, "Succeeded") else None,
                         s["health_message"]) if m] + s["conditions"]
    return text + (f": {'; '.join(extra)}" if extra else "")


class _Progress:
    """One stderr line per change of the observed state (Jenkins logs stay short)."""

    def __init__(self, name: str, target: str, contains):
        self.name, self.target, self.contains, self.last = name, target, contains, None

    def __call__(self, app: dict) -> None:
        outcome, line = verdict(app, self.target, self.contains)
        if outcome == "waiting" and line != self.last:
            k8s.log(f"argocd application {self.name}: {line}")
            self.last = line


def wait(cfg, revision: str | None, timeout_seconds: float) -> dict[str, Any]:
    """Watch the Application until ``revision`` (default: the GitOps branch head) is deployed.

    Returns the result document; ``deployed`` False with ``reason`` when Argo CD reported a
    failure or the timeout passed (the caller exits 1, after a rollback when asked).
    """
    from pyhelpers.deploy import gitops

    if revision:
        target, source = check_revision(revision), "argument"
    else:
        # the branch head, not "our" commit: a later push on top of ours is what Argo CD syncs next
        target, source = gitops.branch_head(cfg), f"head of {cfg.gitops.branch}"
        if not target:
            raise OperationFailed(f"GitOps repository {gitops.redact(cfg.gitops_repo)} has no branch "
                                  f"{cfg.gitops.branch!r}: run `mlops deploy push` first")
    ns, name = cfg.argocd.namespace, cfg.argocd_application
    custom, _ = k8s.clients()
    what = f"wait for Argo CD application {name}"
    if k8s.get_current(custom, GROUP, VERSION, ns, PLURAL, name, what) is None:
        raise BadInput(f"argocd.application: no Application {name!r} in namespace {ns!r} (argocd.namespace); "
                       "apply the rendered argocd/ manifest or check the names")
    k8s.log(f"waiting up to {timeout_seconds:g}s for Argo CD application {ns}/{name} to deploy {target[:12]} ({source})")
    started = time.monotonic()
    contains = Contains(cfg, target)
    try:
        app = k8s.wait_for(custom, GROUP, VERSION, ns, PLURAL, name,
                           lambda o: verdict(o, target, contains)[0] != "waiting",
                           timeout_seconds, what, _Progress(name, target, contains))
        outcome, reason = verdict(app, target, contains)
    except k8s.WaitTimeout as exc:
        app, outcome = exc.last, "timeout"
        reason = f"not deployed after {timeout_seconds:g}s: {describe(state(exc.last), target)}"
    s = state(app)
    result = {
        "application": name, "namespace": ns, "revision": target, "revision_source": source,
        "deployed": outcome == "deployed", "outcome": outcome, "reason": reason,
        "sync": {"status": s["sync_status"], "revision": s["sync_revision"]},
        "operation": {"phase": s["operation_phase"], "revision": s["operation_revision"],
                      "message": s["operation_message"]},
        "health": {"status": s["health"], "message": s["health_message"]},
        "waited_seconds": round(time.monotonic() - started, 1),
    }
    if cfg.deploy.target == "kserve":
        isvc = result["inference_service"] = inference_service(cfg, custom)
        if outcome != "deployed" and isvc.get("problems"):
            result["reason"] = f"{reason}; InferenceService {isvc['namespace']}/{isvc['name']}: " \
                               + "; ".join(isvc["problems"])
    return result


def inference_service(cfg, custom) -> dict[str, Any]:
    """What the deployed InferenceService reports of itself (a failure to read it is reported, not raised:
    Argo CD's verdict stands)."""
    ns, name = cfg.deploy.namespace, cfg.project
    out: dict[str, Any] = {"name": name, "namespace": ns}
    try:
        obj = k8s.get_current(custom, KSERVE_GROUP, KSERVE_VERSION, ns, KSERVE_PLURAL, name,
                              f"read InferenceService {ns}/{name}")
    except OperationFailed as exc:
        return {**out, "found": None, "error": str(exc)}
    if obj is None:
        return {**out, "found": False, "problems": ["not found in the cluster"]}
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    model = status.get("modelStatus") or {}
    failure = model.get("lastFailureInfo") or {}
    problems = [
        f"{c.get('type')} {c.get('status')}" + "".join(f": {c[k]}" for k in ("reason", "message") if c.get(k))
        for c in conditions if c.get("status") != "True" and c.get("type") != "Stopped"
    ]
    if failure:
        problems.append("model " + ": ".join(str(failure[k]) for k in ("reason", "message") if failure.get(k)))
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return {**out, "found": True,
            "ready": any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
            "url": status.get("url"), "model_version": annotations.get("mlops.io/model-version"),
            "transition_status": model.get("transitionStatus"), "problems": problems}


def rollback(cfg, revision: str, reason: str) -> dict[str, Any]:
    """Revert GitOps commit ``revision`` (a new commit) and move the ``champion`` alias back.

    The alias moves only when it still names the model version the reverted manifest deployed:
    a rerun, or someone who already rolled back by hand, must not move it a second step back.
    Each part reports its own outcome; neither hides the other's failure.
    """
    from pyhelpers.deploy import gitops

    out: dict[str, Any] = {"gitops": None, "champion": None}
    failed_version = _manifest_version(cfg, revision)
    subject = f"Revert deployment {revision[:12]}: Argo CD did not deploy it"
    message = f"{subject}\n\nThis reverts commit {revision}.\nReason: {reason[:1000]}\n"
    try:
        out["gitops"] = gitops.revert_commit(cfg, revision, message)
    except OperationFailed as exc:
        out["gitops"] = {"changed": False, "error": str(exc)}
    out["champion"] = _move_champion_back(cfg, failed_version)
    return out


def _manifest_version(cfg, revision: str) -> str | None:
    from pyhelpers.deploy import gitops
    from pyhelpers.lineage import deployed_model, serving_manifest

    text = gitops.file_at(cfg, revision, cfg.gitops_path)
    if text is None:
        return None
    try:
        return deployed_model(serving_manifest(text, cfg.gitops_path), cfg.gitops_path)["model_version"]
    except BadInput:
        return None


def _move_champion_back(cfg, failed_version: str | None) -> dict[str, Any]:
    from pyhelpers.model import registry

    try:
        current = registry.get_champion(cfg)
        if current is None:
            return {"moved": False, "reason": f"model {cfg.registered_model!r} has no champion"}
        if failed_version is not None and str(current["version"]) != failed_version:
            return {"moved": False, "version": str(current["version"]),
                    "reason": f"champion is version {current['version']}, not the failed version {failed_version}"}
        moved = registry.rollback(cfg)
        return {"moved": True, "version": moved["version"], "previous": moved["previous"]}
    except BadInput as exc:  # e.g. the first champion: nothing to go back to
        return {"moved": False, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - MLflow unreachable etc.: reported, the GitOps revert stands
        return {"moved": False, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
