"""Champion/challenger gate: score both models on the candidate's validation rows, decide.

The objective named by the Experiment (e.g. ``validation-rmse``) is recomputed here from
predictions, so candidate and champion are compared on the same rows with the same formula.
"""

from __future__ import annotations

import math
from pathlib import Path

# metric -> natural direction. Matched as a substring of the objective name, in this order
# ("rmse" before "mse"); an unknown objective is scored with rmse and says so.
METRICS: dict[str, str] = {"rmse": "minimize", "mae": "minimize", "mse": "minimize", "r2": "maximize",
                           "accuracy": "maximize"}


def metric_for(objective_metric: str | None) -> str:
    name = (objective_metric or "").lower()
    return next((m for m in METRICS if m in name), "rmse")


def score(metric: str, y_true, y_pred) -> float:
    import numpy as np

    y_true = np.asarray(y_true, dtype=float) if metric != "accuracy" else np.asarray(y_true)
    y_pred = np.asarray(y_pred).reshape(len(y_true), -1)[:, 0]
    if metric == "accuracy":
        return float(np.mean(y_pred == y_true))
    y_pred = y_pred.astype(float)
    err = y_pred - y_true
    if metric == "rmse":
        return float(np.sqrt(np.mean(err**2)))
    if metric == "mse":
        return float(np.mean(err**2))
    if metric == "mae":
        return float(np.mean(np.abs(err)))
    if metric == "r2":
        total = float(np.sum((y_true - y_true.mean()) ** 2))
        return 1.0 - float(np.sum(err**2)) / total if total else 0.0
    raise ValueError(f"unknown metric {metric!r}")


def load_validation(folder: Path) -> tuple[object, str]:
    """(validation rows, target column) from the run artifacts written by `mlops model train`."""
    import json

    import pandas as pd

    desc = json.loads((folder / "mlops-model.json").read_text(encoding="utf-8"))
    rows = pd.read_csv(folder / Path(desc["validation"]).name)
    return rows, desc["target"]


def evaluate(model_uri: str, rows, target: str, metric: str) -> float:
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    return score(metric, rows[target], model.predict(rows.drop(columns=[target])))


def improvement(candidate: float, champion: float, direction: str) -> float:
    """Relative gain of the candidate over the champion (positive: better)."""
    gain = champion - candidate if direction == "minimize" else candidate - champion
    scale = abs(champion)
    if scale == 0:
        return math.inf if gain > 0 else (0.0 if gain == 0 else -math.inf)
    return gain / scale


def decide(candidate: float, champion: float, direction: str, min_improvement: float) -> tuple[bool, float]:
    """Promote only when strictly better and by at least ``min_improvement`` (relative)."""
    gain = improvement(candidate, champion, direction)
    return gain > 0 and gain >= min_improvement, gain
