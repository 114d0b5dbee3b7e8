"""Model registry: register a trained run, gate it against the champion, promote, roll back.

The serving alias is ``champion`` (stages are deprecated in MLflow). The registered model keeps
``mlops.champion_history`` (versions that held the alias, oldest first) and
``mlops.previous_champion`` (the version ``rollback`` returns to).

Order of writes, so that a failure midway never leaves a half-registered model promoted: create
the version with its lineage tags, score it, record the decision on the version, then update
the history tags, and move the alias last.
"""

from __future__ import annotations

from pathlib import Path

from pyhelpers.errors import BadInput, OperationFailed
from pyhelpers.fsutil import scratch_dir
from pyhelpers.model import gate
from pyhelpers.model import tracking as t

# Tags recording the gate's decision on a version (a version without them was never gated).
GATE = "mlops.gate"  # promoted | rejected
GATE_REASON = "mlops.gate_reason"
GATE_METRIC = "mlops.gate_metric"
GATE_CANDIDATE_VALUE = "mlops.gate_candidate_value"
GATE_CHAMPION_VERSION = "mlops.gate_champion_version"
GATE_CHAMPION_VALUE = "mlops.gate_champion_value"


def _not_found(exc) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def champion_version(client, name: str):
    """The ModelVersion holding the champion alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, t.CHAMPION)
    except MlflowException as exc:
        # "no such model" or "no such alias"; a failing server (5xx, whose message may quote the
        # alias URL) is a failure, never "no champion"
        missing_alias = getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE" and "alias" in str(exc).lower()
        if _not_found(exc) or missing_alias:
            return None
        raise t.mlflow_failure("reading the champion alias failed", exc) from None


def get_champion(cfg) -> dict | None:
    """The serving model as described in docs/CONTRACTS.md, or None when nothing is champion."""
    client = t.connect(cfg)
    name = cfg.registered_model
    mv = champion_version(client, name)
    if mv is None:
        return None
    return describe_version(client, name, mv)


def describe_version(client, name: str, mv) -> dict:
    tags = mv.tags or {}
    value = tags.get(t.OBJECTIVE_VALUE)
    return {
        "name": name,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "model_uri": f"models:/{name}/{mv.version}",
        "artifact_uri": t.local_path(client.get_model_version_download_uri(name, mv.version)),
        "data_version": tags.get(t.DATA_VERSION),
        "git_commit": tags.get(t.GIT_COMMIT),
        "experiment": tags.get(t.EXPERIMENT),
        "best_trial": tags.get(t.BEST_TRIAL),
        "objective_metric": tags.get(t.OBJECTIVE_METRIC),
        "objective_value": float(value) if value else None,
    }


# -- register + gate --------------------------------------------------------------------------
def find_run(client, exp_id: str, run_id: str | None):
    """The given run, or the latest finished training run of the project's MLflow experiment."""
    from mlflow.exceptions import MlflowException

    if run_id:
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            if _not_found(exc):
                raise BadInput(f"--run-id: run {run_id!r} not found in the tracking store") from None
            raise
        if run.info.status != "FINISHED":
            raise BadInput(f"--run-id: run {run_id!r} is {run.info.status}, not FINISHED")
        if not run.data.tags.get(t.MODEL_ID):
            raise BadInput(f"--run-id: run {run_id!r} has no model logged by `mlops model train`")
        return run
    runs = client.search_runs([exp_id], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=50)
    run = next((r for r in runs if r.data.tags.get(t.MODEL_ID)), None)
    if run is None:
        raise BadInput(f"no trained model in MLflow experiment {exp_id}; run `mlops model train` first")
    return run


def ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if not _not_found(exc):
            raise
        try:
            client.create_registered_model(name)
        except MlflowException:
            client.get_registered_model(name)  # created concurrently, else raise


def version_of_run(client, name: str, run_id: str):
    versions = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def version_of_key(client, name: str, key: str | None):
    """The first version registered for this training key (data version + parameters + commit)."""
    if not key or not key.isalnum():
        return None
    versions = client.search_model_versions(f"name='{name}' and tags.`{t.TRAIN_KEY}` = '{key}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def register(cfg, run_id: str | None = None) -> dict:
    client = t.connect(cfg)
    name = cfg.registered_model
    run = find_run(client, t.ensure_experiment(client, cfg), run_id)
    run_id = run.info.run_id
    ensure_registered_model(client, name)

    # One version per data version + code + parameters: a run trained again for the same key
    # (e.g. by a concurrent line before the project lock existed) finds the version already made.
    mv = version_of_run(client, name, run_id) or version_of_key(client, name, run.data.tags.get(t.TRAIN_KEY))
    if mv is not None and (mv.tags or {}).get(GATE):
        return recorded_decision(client, name, mv)
    if mv is None:
        model_id = run.data.tags[t.MODEL_ID]
        tags = {k: v for k, v in run.data.tags.items() if k in t.LINEAGE_TAGS}
        tags[t.MODEL_ID] = model_id
        if run.data.tags.get(t.TRAIN_KEY):
            tags[t.TRAIN_KEY] = run.data.tags[t.TRAIN_KEY]
        mv = client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                                         model_id=model_id)
    result = judge(cfg, client, name, run, mv)
    for key, value in {
        GATE: "promoted" if result["promoted"] else "rejected",
        GATE_REASON: result["reason"],
        GATE_METRIC: result["metric"],
        GATE_CANDIDATE_VALUE: repr(result["candidate_value"]),
        GATE_CHAMPION_VERSION: (result["champion"] or {}).get("version") or "",
        GATE_CHAMPION_VALUE: "" if result["champion_value"] is None else repr(result["champion_value"]),
    }.items():
        if value:
            client.set_model_version_tag(name, mv.version, key, value)
    if result["promoted"]:
        move_champion(client, name, str(mv.version))
    return {**result, "unchanged": False}


def judge(cfg, client, name: str, run, mv) -> dict:
    """Score candidate (and champion) on the candidate's validation rows; the gate's verdict."""
    objective_metric = run.data.tags.get(t.OBJECTIVE_METRIC) or ""
    metric = gate.metric_for(objective_metric)
    direction = gate.METRICS[metric]
    with scratch_dir(cfg.state, "gate") as tmp:  # under .mlops/tmp/: a killed run's copy is removed next time
        try:
            folder = Path(client.download_artifacts(run.info.run_id, "validation", tmp))
            rows, target = gate.load_validation(folder)
        except Exception as exc:  # noqa: BLE001 - any failure here means the run lacks its validation data
            raise OperationFailed(f"run {run.info.run_id}: cannot read its validation artifacts ({exc})") from None
    try:
        cand_value = gate.evaluate(f"models:/{name}/{mv.version}", rows, target, metric)
    except Exception as exc:  # noqa: BLE001
        raise t.mlflow_failure(f"candidate version {mv.version} could not be scored", exc) from None

    result = {
        "name": name, "promoted": False, "reason": "",
        "candidate": {"version": str(mv.version), "run_id": run.info.run_id, "value": cand_value},
        "champion": None, "metric": metric, "objective_metric": objective_metric, "direction": direction,
        "min_improvement": cfg.mlflow.min_improvement, "candidate_value": cand_value, "champion_value": None,
        "improvement": None, "validation_rows": len(rows),
    }
    champ = champion_version(client, name)
    if champ is None:
        return {**result, "promoted": True, "reason": "no champion yet: the first gated version becomes champion"}
    result["champion"] = {"version": str(champ.version), "run_id": champ.run_id, "value": None}
    try:
        champ_value = gate.evaluate(f"models:/{name}/{champ.version}", rows, target, metric)
    except Exception as exc:  # noqa: BLE001 - e.g. the champion expects other input columns
        reason = (f"champion v{champ.version} could not be scored on the candidate's validation rows "
                  f"({' '.join(str(exc).split())[:200]}); promote by hand with `mlops model promote {mv.version}`")
        return {**result, "reason": reason}
    result["champion"]["value"] = champ_value
    promote, gain = gate.decide(cand_value, champ_value, direction, cfg.mlflow.min_improvement)
    comparison = (f"{metric} {cand_value:.6g} vs champion v{champ.version} {champ_value:.6g} "
                  f"on {len(rows)} validation rows: {abs(gain):.2%} {'better' if gain > 0 else 'worse' if gain < 0 else 'equal'}")
    needed = f"needs at least {cfg.mlflow.min_improvement:.2%} better" if cfg.mlflow.min_improvement else "needs better"
    reason = f"{comparison} ({needed})"
    return {**result, "promoted": promote, "reason": reason, "champion_value": champ_value, "improvement": gain}


def recorded_decision(client, name: str, mv) -> dict:
    """What `register` reports when the run was registered and gated before (a no-op rerun)."""
    tags = mv.tags or {}
    champ = champion_version(client, name)
    is_champion = champ is not None and str(champ.version) == str(mv.version)

    def number(key: str) -> float | None:
        return float(tags[key]) if tags.get(key) else None

    champion = None
    if tags.get(GATE_CHAMPION_VERSION):
        champion = {"version": tags[GATE_CHAMPION_VERSION], "value": number(GATE_CHAMPION_VALUE)}
    return {
        "name": name, "unchanged": True, "promoted": is_champion,
        "reason": (f"run {mv.run_id} is already registered as version {mv.version} "
                   f"({'champion' if is_champion else 'not champion'}); the gate said: {tags.get(GATE_REASON)}"),
        "candidate": {"version": str(mv.version), "run_id": mv.run_id, "value": number(GATE_CANDIDATE_VALUE)},
        "champion": champion, "metric": tags.get(GATE_METRIC), "objective_metric": tags.get(t.OBJECTIVE_METRIC),
        "candidate_value": number(GATE_CANDIDATE_VALUE), "champion_value": number(GATE_CHAMPION_VALUE),
        "decision": tags.get(GATE),
    }


# -- champion alias ---------------------------------------------------------------------------
def history(client, name: str) -> list[str]:
    raw = client.get_registered_model(name).tags.get(t.CHAMPION_HISTORY, "")
    return [v for v in raw.split(",") if v]


def _write_history(client, name: str, versions: list[str]) -> None:
    client.set_registered_model_tag(name, t.CHAMPION_HISTORY, ",".join(versions))
    if len(versions) >= 2:
        client.set_registered_model_tag(name, t.PREVIOUS_CHAMPION, versions[-2])
    else:
        try:
            client.delete_registered_model_tag(name, t.PREVIOUS_CHAMPION)
        except Exception:  # noqa: BLE001 - absent already
            pass


def move_champion(client, name: str, version: str) -> str | None:
    """Give ``version`` the champion alias; returns the previous champion's version."""
    current = champion_version(client, name)
    hist = history(client, name)
    if current is not None:
        cur = str(current.version)
        # Entries after the current champion's last one are from an interrupted move: drop them.
        hist = hist[: len(hist) - hist[::-1].index(cur)] if cur in hist else [*hist, cur]
    _write_history(client, name, [*hist, version])
    client.set_registered_model_alias(name, t.CHAMPION, version)  # last: the switch itself
    return str(current.version) if current is not None else None


def _version(client, name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if _not_found(exc):
            raise BadInput(f"VERSION: model {name!r} has no version {version}") from None
        raise


def promote(cfg, version: str) -> dict:
    """Make ``version`` the champion by hand (no gate: a person decided)."""
    name = cfg.registered_model
    if not str(version).isdigit():
        raise BadInput(f"VERSION: expected a version number of model {name!r}, got {version!r}")
    client = t.connect(cfg)
    mv = _version(client, name, version)
    current = champion_version(client, name)
    if current is not None and str(current.version) == str(mv.version):
        return {"name": name, "version": str(mv.version), "previous": None, "unchanged": True}
    previous = move_champion(client, name, str(mv.version))
    return {"name": name, "version": str(mv.version), "previous": previous, "unchanged": False}


def rollback(cfg) -> dict:
    """Move the champion alias back to the version that held it before."""
    client = t.connect(cfg)
    name = cfg.registered_model
    current = champion_version(client, name)
    if current is None:
        raise BadInput(f"model {name!r} has no champion to roll back from")
    cur = str(current.version)
    hist = history(client, name)
    hist = hist[: len(hist) - 1 - hist[::-1].index(cur)] if cur in hist else hist
    while hist and (hist[-1] == cur or not _exists(client, name, hist[-1])):
        hist.pop()
    if not hist:
        raise BadInput(f"model {name!r}: champion v{cur} has no previous champion to roll back to")
    target = hist[-1]
    _write_history(client, name, hist)
    client.set_registered_model_alias(name, t.CHAMPION, target)
    return {"name": name, "version": target, "previous": cur}


def _exists(client, name: str, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
        return True
    except MlflowException:
        return False


def withdraw(cfg, version: str, reason: str) -> dict:
    """Undo a promotion that failed the deployment checks (e.g. the smoke test).

    The alias goes back to the previous champion, or is removed when there was none, and the
    version's gate decision is cleared so the next run judges it again (the failure may have
    been the environment's, such as a busy port).
    """
    client = t.connect(cfg)
    name = cfg.registered_model
    current = champion_version(client, name)
    champion = str(current.version) if current is not None else None
    if champion == str(version):
        try:
            champion = rollback(cfg)["version"]
        except BadInput:  # it was the first champion: nothing to go back to
            client.delete_registered_model_alias(name, t.CHAMPION)
            _write_history(client, name, [v for v in history(client, name) if v != str(version)])
            champion = None
    try:
        client.delete_model_version_tag(name, str(version), GATE)
    except Exception:  # noqa: BLE001 - no decision recorded yet
        pass
    client.set_model_version_tag(name, str(version), "mlops.withdrawn", reason[:500])
    return {"name": name, "version": str(version), "champion": champion}
