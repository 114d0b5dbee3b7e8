"""Argo CD's health assessment, for the Argo CD stand-in of tests/test_argocd_wait.py.

Tests play Argo CD's application controller: they write an Application's ``status`` into the
Kubernetes stand-in (tests/fakes/k8s.py). For an InferenceService the health in that status must be
the one Argo CD itself would compute, so it is derived here from the InferenceService's own status.

``inference_service_health`` restates Argo CD v3.5.1's built-in check
(resource_customizations/serving.kserve.io/InferenceService/health.lua, unchanged on master in
August 2026; its health_test.yaml and testdata/ were read to learn the shapes):

- no ``status``, or a status without ``conditions``: Progressing, "Waiting for InferenceService to
  report status...";
- a condition ``Stopped`` with status True: Suspended, "InferenceService is Stopped";
- ``status.modelStatus.transitionStatus`` other than UpToDate: InProgress counts as progressing,
  any other value (BlockedByFailedLoad, InvalidSpec) as degraded; the message starts
  "0: transitionStatus | <value>";
- every condition other than Stopped whose status is not True adds
  `` | <1-based index>: <type> | <status>[ | <reason>][ | <message>]`` to the message;
- Healthy ("InferenceService is healthy.") only when nothing is progressing or degraded and no
  condition is False or Unknown; otherwise Degraded only when the transition status said so: a
  False condition alone (say PredictorReady False, RevisionFailed) stays Progressing.

``application_health`` is the Application's health: the worst of its resources' in the order of
gitops-engine's pkg/health (Healthy < Suspended < Progressing < Missing < Degraded < Unknown).
"""

from __future__ import annotations

HEALTH_ORDER = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")


def inference_service_health(isvc: dict) -> dict:
    status = isvc.get("status")
    if status is None:
        return {"status": "Progressing", "message": "Waiting for InferenceService to report status..."}
    progressing = degraded = False
    msg = ""
    transition = (status.get("modelStatus") or {}).get("transitionStatus")
    if status.get("modelStatus") is not None and transition != "UpToDate":
        if transition == "InProgress":
            progressing = True
        else:
            degraded = True
        msg += f"0: transitionStatus | {transition}"
    conditions = status.get("conditions")
    if conditions is None:
        return {"status": "Progressing", "message": "Waiting for InferenceService to report status..."}
    unknown = false = 0
    for index, cond in enumerate(conditions, start=1):
        if cond.get("type") == "Stopped" and cond.get("status") == "True":
            return {"status": "Suspended", "message": "InferenceService is Stopped"}
        if cond.get("status") == "Unknown":
            unknown += 1
        elif cond.get("status") == "False" and cond.get("type") != "Stopped":
            false += 1
        if cond.get("status") != "True" and cond.get("type") != "Stopped":
            msg += f" | {index}: {cond.get('type')} | {cond.get('status')}"
            msg += "".join(f" | {cond[k]}" for k in ("reason", "message") if cond.get(k))
    if not progressing and not degraded and unknown == 0 and false == 0:
        return {"status": "Healthy", "message": "InferenceService is healthy."}
    return {"status": "Degraded" if degraded else "Progressing", "message": msg}


def application_health(healths: list[dict]) -> dict:
    """The Application's health over its resources' healths (worst first; its message is the worst's)."""
    if not healths:
        return {"status": "Healthy"}
    worst = max(healths, key=lambda h: HEALTH_ORDER.index(h["status"]))
    return dict(worst)


def isvc_condition(type_: str, status: str = "True", reason: str | None = None, message: str | None = None) -> dict:
    """A knative-style condition as KServe writes them (lastTransitionTime, optional reason/message)."""
    cond = {"lastTransitionTime": "2026-05-01T10:00:00Z", "status": status, "type": type_}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


# The condition types KServe v0.20 sets on an InferenceService with only a predictor
# (pkg/apis/serving/v1beta1/inference_service_status.go): Knative mode (routes and configuration of
# the Knative Service) and Standard/raw mode.
KNATIVE_CONDITIONS = ("IngressReady", "LatestDeploymentReady", "PredictorConfigurationReady", "PredictorReady",
                      "PredictorRouteReady", "Ready")
STANDARD_CONDITIONS = ("IngressReady", "PredictorReady", "Ready")
