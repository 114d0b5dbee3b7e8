"""Katib-shaped status documents of Experiments run by the local engine."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pyhelpers.errors import BadInput
from pyhelpers.fsutil import read_json

STATUS_FILE = "experiment.json"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def experiment_dir(state: Path, name: str) -> Path:
    """``<state>/experiments/<name>``; a name that is not a DNS-1123 label (``../mlflow``) is exit 2."""
    from pyhelpers.experiment.naming import experiment_dir as confined

    return confined(state, name)


def set_condition(status: dict, type_: str, state: str, reason: str, message: str) -> None:
    """Add or update a condition as Katib does (Running goes False when the experiment ends)."""
    stamp = now()
    for cond in status.setdefault("conditions", []):
        if cond["type"] == type_:
            if cond["status"] != state:
                cond["lastTransitionTime"] = stamp
            cond.update(status=state, reason=reason, message=message, lastUpdateTime=stamp)
            return
    status["conditions"].append({
        "type": type_, "status": state, "reason": reason, "message": message,
        "lastUpdateTime": stamp, "lastTransitionTime": stamp,
    })


def phase(doc: dict) -> str:
    """Succeeded, Failed, Running or Created: the latest true condition."""
    for cond in reversed((doc.get("status") or {}).get("conditions") or []):
        if cond.get("status") == "True":
            return cond["type"]
    return "Created"


def load_status(cfg, name: str) -> dict:
    """The status document of experiment ``name`` (a name, or a path to an experiment.json)."""
    path = Path(name)
    if not (path.suffix == ".json" and path.is_file()):
        path = experiment_dir(cfg.state, name) / STATUS_FILE
    if not path.is_file():
        raise BadInput(f"no results for experiment {name!r} (looked for {path}); run `mlops line data` first")
    try:
        doc = read_json(path)
    except ValueError as exc:
        raise BadInput(f"not a valid status document: {exc}", source=str(path)) from None
    if not isinstance(doc, dict) or doc.get("kind") != "Experiment":
        raise BadInput("not an Experiment status document", source=str(path))
    check_document(doc, str(path))
    return doc


def check_document(doc: dict, source: str) -> None:
    """The fields readers rely on have the right shape, so a hand-edited file is bad input, not a crash."""
    def bad(field: str, what: str) -> BadInput:
        return BadInput(f"{field}: {what}", source=source)

    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise bad("metadata.name", "missing (an Experiment status document names its Experiment)")
    if not isinstance(meta.get("annotations") or {}, dict):
        raise bad("metadata.annotations", "must be a mapping")
    if not isinstance(doc.get("spec") or {}, dict):
        raise bad("spec", "must be a mapping")
    status = doc.get("status") or {}
    if not isinstance(status, dict):
        raise bad("status", "must be a mapping")
    conditions = status.get("conditions") or []
    if not isinstance(conditions, list) or not all(isinstance(c, dict) and "type" in c for c in conditions):
        raise bad("status.conditions", "must be a list of conditions with type and status")
    opt = status.get("currentOptimalTrial") or {}
    if not isinstance(opt, dict):
        raise bad("status.currentOptimalTrial", "must be a mapping")
    for i, a in enumerate(opt.get("parameterAssignments") or []):
        if not (isinstance(a, dict) and isinstance(a.get("name"), str) and "value" in a):
            raise bad(f"status.currentOptimalTrial.parameterAssignments[{i}]", "needs name and value")
    observation = opt.get("observation") or {}
    if not isinstance(observation, dict):
        raise bad("status.currentOptimalTrial.observation", "must be a mapping")
    for i, m in enumerate(observation.get("metrics") or []):
        if not (isinstance(m, dict) and isinstance(m.get("name"), str)):
            raise bad(f"status.currentOptimalTrial.observation.metrics[{i}]", "needs a name")


def best_trial(doc: dict) -> dict | None:
    """currentOptimalTrial as {name, parameters, metrics}, or None when no trial succeeded."""
    opt = (doc.get("status") or {}).get("currentOptimalTrial") or {}
    if not opt.get("bestTrialName"):
        return None
    return {
        "name": opt["bestTrialName"],
        "parameters": {a["name"]: a["value"] for a in opt.get("parameterAssignments") or []},
        "metrics": {m["name"]: m for m in (opt.get("observation") or {}).get("metrics") or []},
    }


def human_value(value) -> str:
    """A value for people: floats rounded to 6 significant digits (``--json`` keeps full precision)."""
    text = str(value)
    if isinstance(value, bool) or isinstance(value, int):
        return text
    try:
        number = float(text)
    except (TypeError, ValueError):
        return text
    if isinstance(value, str) and text.strip().lstrip("+-").isdigit():
        return text  # an integer parameter stays as written
    return f"{number:.6g}"
