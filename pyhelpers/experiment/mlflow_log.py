"""MLflow as the place to look: a finished Experiment becomes a parent run with one child run per trial.

Read from the status document (docs/CONTRACTS.md), so it works the same for the local engine and
Katib. The parent run ``<experiment>`` carries the search settings, the best objective, the data
version as a dataset input (name = the tracked paths, digest = the data version, source = the DVC
remote) and the report (Markdown + PNG); each child run ``<trial>`` carries the trial's parameters,
metrics, condition and log. The MLflow UI can then compare trials side by side.

Idempotent: a parent run tagged with the Experiment's name is reused, never duplicated.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pyhelpers.model import tracking as t

KIND = "mlops.run_kind"  # "experiment" (parent) or "trial" (child)
KATIB_EXPERIMENT = "mlops.katib_experiment"
TRIAL_CONDITION = "mlops.trial_condition"
DATASET_CONTEXT = "tuning"
REPORT_FOLDER = "report"


def _log(message: str) -> None:
    print(f"[mlflow] {message}", file=sys.stderr, flush=True)


def _millis(raw: str | None) -> int | None:
    if not raw:
        return None
    try:
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _number(raw) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _existing_parent(client, exp_id: str, name: str):
    runs = client.search_runs([exp_id], filter_string=f"tags.`{KATIB_EXPERIMENT}` = '{name}' and "
                                                      f"tags.`{KIND}` = 'experiment'", max_results=1)
    return runs[0] if runs else None


def log_experiment(cfg, doc: dict, report: dict | None = None) -> dict[str, Any]:
    """Log a finished Experiment (status document ``doc``) to MLflow; returns what was logged."""
    from mlflow.entities import Metric, Param, RunTag

    from pyhelpers.experiment.status import experiment_dir, phase

    meta = doc.get("metadata") or {}
    name = meta["name"]
    annotations = meta.get("annotations") or {}
    data_version = annotations.get("mlops.io/data-version")
    spec = doc.get("spec") or {}
    objective = spec.get("objective") or {}
    status = doc.get("status") or {}

    client = t.connect(cfg)
    exp_id = t.ensure_experiment(client, cfg)
    existing = _existing_parent(client, exp_id, name)
    if existing is not None and existing.info.status == "FINISHED":
        return {"parent_run_id": existing.info.run_id, "trials": None, "unchanged": True}
    if existing is not None:  # an interrupted earlier attempt: start over, never a half-logged pair
        client.delete_run(existing.info.run_id)

    tags = {KIND: "experiment", KATIB_EXPERIMENT: name, t.EXPERIMENT: name, "mlflow.runName": name,
            t.DATA_VERSION: data_version, t.GIT_COMMIT: annotations.get("mlops.io/git-commit"),
            t.OBJECTIVE_METRIC: objective.get("objectiveMetricName"), t.OBJECTIVE_TYPE: objective.get("type"),
            "mlops.phase": phase(doc)}
    best = status.get("currentOptimalTrial") or {}
    if best.get("bestTrialName"):
        tags[t.BEST_TRIAL] = best["bestTrialName"]
    parent = client.create_run(exp_id, start_time=_millis(status.get("startTime")),
                               tags={k: str(v) for k, v in tags.items() if v})
    parent_id = parent.info.run_id
    params = {"algorithm": (spec.get("algorithm") or {}).get("algorithmName"),
              "maxTrialCount": spec.get("maxTrialCount"), "parallelTrialCount": spec.get("parallelTrialCount"),
              "maxFailedTrialCount": spec.get("maxFailedTrialCount"), "objective": objective.get("objectiveMetricName"),
              "objective_type": objective.get("type")}
    metrics = {"trials": status.get("trials"), "trials_succeeded": status.get("trialsSucceeded"),
               "trials_failed": status.get("trialsFailed")}
    for m in (best.get("observation") or {}).get("metrics") or []:
        metrics[f"best_{m.get('name')}"] = m.get("latest")
    now = _millis(status.get("completionTime")) or 0
    client.log_batch(parent_id, params=[Param(k, str(v)) for k, v in params.items() if v is not None],
                     metrics=[Metric(k, v, now, 0) for k, raw in metrics.items() if (v := _number(raw)) is not None])
    folder = experiment_dir(cfg.state, name)
    children = 0
    for trial in doc.get("trials") or []:
        start, end = _millis(trial.get("startTime")), _millis(trial.get("completionTime"))
        condition = trial.get("condition") or "Unknown"
        child = client.create_run(exp_id, start_time=start, tags={
            "mlflow.parentRunId": parent_id, "mlflow.runName": trial.get("name"), KIND: "trial",
            KATIB_EXPERIMENT: name, TRIAL_CONDITION: condition,
            **({t.DATA_VERSION: data_version} if data_version else {})})
        trial_params = [Param(a["name"], str(a["value"])) for a in trial.get("parameterAssignments") or []]
        trial_metrics = [Metric(m["name"], v, end or start or 0, 0)
                         for m in (trial.get("observation") or {}).get("metrics") or []
                         if (v := _number(m.get("latest"))) is not None]
        client.log_batch(child.info.run_id, params=trial_params, metrics=trial_metrics,
                         tags=[RunTag("mlops.exit_code", str(trial.get("exitCode")))] if "exitCode" in trial else [])
        log = folder / trial["log"] if trial.get("log") else None
        if log is not None and log.is_file():
            client.log_artifact(child.info.run_id, str(log), "log")
        client.set_terminated(child.info.run_id, "FINISHED" if condition == "Succeeded" else "FAILED", end_time=end)
        children += 1

    attached = []
    if report:
        for key in ("markdown", "plot"):
            path = report.get(key)
            if path and Path(path).is_file():
                client.log_artifact(parent_id, path, REPORT_FOLDER)
                attached.append(Path(path).name)
    if data_version:
        _log_dataset(cfg, parent_id, data_version)
    client.set_terminated(parent_id, "FINISHED", end_time=_millis(status.get("completionTime")))
    return {"parent_run_id": parent_id, "trials": children, "report": attached, "unchanged": False,
            "mlflow_experiment_id": exp_id}


def _log_dataset(cfg, run_id: str, data_version: str) -> None:
    """The data version as an MLflow dataset input: digest = data version, source = the DVC remote."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        # a local remote matches two registrations of the same LocalArtifactDatasetSource class: no choice to make
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        source = resolve_dataset_source(cfg.dvc_remote_url)
    dataset = MetaDataset(source=source, name=",".join(cfg.data.paths), digest=data_version)
    with mlflow.start_run(run_id=run_id):  # log_input is fluent-only; the run stays open for the caller
        mlflow.log_input(dataset, context=DATASET_CONTEXT, tags={t.DATA_VERSION: data_version})


def log_experiment_quietly(cfg, doc: dict) -> dict[str, Any]:
    """For the data line: the Experiment's outcome stands whatever MLflow says; a failure is a warning.
    Builds the report first (its PNG also goes with the Slack message: ``plot`` in the result)."""
    report = None
    try:
        from pyhelpers.experiment.report import build_report

        report = build_report(cfg, doc["metadata"]["name"])
    except Exception as exc:  # noqa: BLE001 - no report is no reason to skip the runs
        _log(f"warning: no report for the Experiment: {exc}")
    plot = report["plot"] if report else None
    try:
        result = log_experiment(cfg, doc, report)
    except Exception as exc:  # noqa: BLE001 - the line's result must not depend on the tracking store
        _log(f"warning: the Experiment was not logged to MLflow: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}", "plot": plot}
    if not result["unchanged"]:
        _log(f"Experiment {doc['metadata']['name']}: parent run {result['parent_run_id']} with "
             f"{result['trials']} trial runs; see them with `mlops ui`")
    return {**result, "plot": plot}
