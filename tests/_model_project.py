"""A tiny copy of the taxi-fare example for the model, lineage and report tests.

The experiment status documents are written here directly (shape of docs/CONTRACTS.md), so these
tests never run the local engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "taxi-fare"
EXPERIMENT = "taxi-fare-tuning"
CHEAP = {"learning-rate": "0.05", "n-estimators": "40", "max-depth": "1", "subsample": "1.0", "loss": "squared_error"}
GOOD = {"learning-rate": "0.2", "n-estimators": "80", "max-depth": "3", "subsample": "1.0", "loss": "squared_error"}
WORSE = {"learning-rate": "0.02", "n-estimators": "40", "max-depth": "1", "subsample": "1.0", "loss": "squared_error"}


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_project(root: Path, rows: int = 400, extra_config: dict | None = None) -> Path:
    """Example project in ``root`` (a git repository with one commit); returns its mlops.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "train.py", root / "train.py")
    (root / "katib").mkdir(exist_ok=True)
    shutil.copy(EXAMPLE / "katib" / "experiment.yaml", root / "katib" / "experiment.yaml")
    subprocess.run([sys.executable, str(EXAMPLE / "generate_data.py"), "--batch", "1", "--rows", str(rows),
                    "--out", str(root / "data" / "trips")], check=True, capture_output=True)
    config = yaml.safe_load((EXAMPLE / "mlops.yaml").read_text())
    for key, value in (extra_config or {}).items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    (root / "mlops.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / ".gitignore").write_text(".mlops/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    return root / "mlops.yaml"


def load(config_path: Path):
    from pyhelpers.config import load_config

    return load_config(config_path, environ={})


def metric(name: str, value: float) -> dict:
    return {"name": name, "min": repr(value), "max": repr(value), "latest": repr(value)}


def write_status(cfg, params: dict[str, str], name: str = EXPERIMENT, data_version: str = "dv-0001",
                 condition: str = "Succeeded", trials: list[dict] | None = None) -> Path:
    """A finished Experiment's status document as the local engine (or Katib) leaves it."""
    spec = yaml.safe_load((cfg.root / "katib" / "experiment.yaml").read_text())["spec"]
    assignments = [{"name": k, "value": v} for k, v in params.items()]
    trials = trials or [{
        "name": f"{name}-0001", "parameterAssignments": assignments, "condition": "Succeeded",
        "observation": {"metrics": [metric("validation-rmse", 2.5), metric("train-rmse", 2.0)]},
        "exitCode": 0, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:05Z",
        "log": f"trials/{name}-0001.log",
    }]
    best = trials[0]
    ok = [t["name"] for t in trials if t["condition"] == "Succeeded"]
    failed = [t["name"] for t in trials if t["condition"] == "Failed"]
    doc = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "namespace": "kubeflow", "annotations": {
            "mlops.io/data-version": data_version, "mlops.io/git-commit": git(cfg.root, "rev-parse", "HEAD"),
            "mlops.io/spec-file": str(cfg.root / "katib" / "experiment.yaml")}},
        "spec": spec,
        "status": {
            "conditions": [
                {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": "",
                 "lastUpdateTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                {"type": "Running", "status": "False" if condition != "Running" else "True",
                 "reason": "ExperimentRunning", "message": "",
                 "lastUpdateTime": "2024-01-01T00:01:00Z", "lastTransitionTime": "2024-01-01T00:01:00Z"},
                *([{"type": condition, "status": "True", "reason": "ExperimentMaxTrialsReached", "message": "",
                    "lastUpdateTime": "2024-01-01T00:01:00Z", "lastTransitionTime": "2024-01-01T00:01:00Z"}]
                  if condition != "Running" else []),
            ],
            "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:01:00Z",
            "currentOptimalTrial": {"bestTrialName": best["name"], "parameterAssignments": best["parameterAssignments"],
                                    "observation": best["observation"]},
            "trials": len(trials), "trialsSucceeded": len(ok), "trialsFailed": len(failed), "trialsKilled": 0,
            "trialMetricsUnavailable": 0, "succeededTrialList": ok, "failedTrialList": failed,
            "killedTrialList": [], "metricsUnavailableTrialList": [],
        },
        "trials": trials,
    }
    path = cfg.state_path("experiments", name, "experiment.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def run_cli(config_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``mlops --config CONFIG ARGS`` in a fresh process: exit codes and stdout as Jenkins sees them."""
    return subprocess.run([sys.executable, "-m", "pyhelpers", "--config", str(config_path), *args],
                          cwd=config_path.parent, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
