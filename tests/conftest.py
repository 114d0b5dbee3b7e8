"""Shared fixtures: run the real `mlops` command, build throw-away git + DVC projects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "taxi-fare"
SHARED = REPO.parent / "shared"
BIN = Path(sys.executable).parent
MLOPS = str(BIN / "mlops")


PRISTINE_ENVIRON = dict(os.environ)


@pytest.fixture(autouse=True)
def _isolated_process_state():
    """In-process MLflow calls export MLFLOW_TRACKING_URI (and keep a module global) for the whole
    pytest process; without this, later tests' `mlops` subprocesses would use that store instead
    of their own project's (an env override wins over mlops.yaml). The environment goes back to
    what the session started with, since module-scoped fixtures may have changed it too."""
    yield
    for key in set(os.environ) - set(PRISTINE_ENVIRON) - {"PYTEST_CURRENT_TEST"}:  # pytest removes its own
        del os.environ[key]
    os.environ.update(PRISTINE_ENVIRON)
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if tracking is not None:
        tracking._tracking_uri = None


class Run:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.proc = proc
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"<mlops exit {self.code}\nstdout: {self.out[-2000:]}\nstderr: {self.err[-2000:]}>"


def run_mlops(*args: str, cwd: Path | str | None = None, env: dict | None = None, timeout: int = 300) -> Run:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "SLACK_", "MLFLOW_"))}
    full_env = {**inherited, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    proc = subprocess.run([MLOPS, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    return Run(proc)


@pytest.fixture
def mlops():
    return run_mlops


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def dvc(cwd: Path, *args: str) -> None:
    subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, check=True, capture_output=True, text=True)


def make_project(dest: Path, rows: int = 600, batches: int = 1, max_trials: int | None = None) -> Path:
    """A copy of the taxi-fare example as a git + DVC repository with generated data."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".mlops", "data"))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", "test")
    git(dest, "config", "user.email", "test@localhost")
    dvc(dest, "init", "-q")
    dvc(dest, "config", "core.analytics", "false")
    if max_trials is not None:
        spec = dest / "katib" / "experiment.yaml"
        text = spec.read_text().replace("maxTrialCount: 8", f"maxTrialCount: {max_trials}")
        # Katib refuses maxFailedTrialCount > maxTrialCount (its webhook): keep the example's 3 within reach
        text = text.replace("maxFailedTrialCount: 3", f"maxFailedTrialCount: {min(3, max_trials)}")
        spec.write_text(text)
    for batch in range(1, batches + 1):
        add_batch(dest, batch, rows, commit=False)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "project with data")
    return dest


def add_batch(dest: Path, batch: int, rows: int = 600, commit: bool = True) -> None:
    subprocess.run([sys.executable, "generate_data.py", "--batch", str(batch), "--rows", str(rows)],
                   cwd=dest, check=True, capture_output=True)
    dvc(dest, "add", "-q", "data/trips")
    if commit:
        git(dest, "add", "data/trips.dvc")
        git(dest, "commit", "-qm", f"data batch {batch}")


@pytest.fixture(scope="session")
def project_template(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("template") / "taxi-fare")


@pytest.fixture
def project(tmp_path, project_template):
    """A fresh git + DVC copy of the example with one data batch (copied: `dvc` calls are slow)."""
    return Path(shutil.copytree(project_template, tmp_path / "taxi-fare", symlinks=True))


EXPERIMENT_TEMPLATE = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective:
    type: {objective}
    objectiveMetricName: loss
{goal}  algorithm:
    algorithmName: {algorithm}
{settings}  parallelTrialCount: {parallel}
  maxTrialCount: {max_trials}
{max_failed}{collector}  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {{min: "-2", max: "2"{step}}}
    - name: n
      parameterType: int
      feasibleSpace: {{min: "1", max: "3"}}
    - name: kind
      parameterType: categorical
      feasibleSpace: {{list: ["a", "b"]}}
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - {{name: x, reference: x}}
      - {{name: n, reference: n}}
      - {{name: kind, reference: kind}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: example/trial:1
                command: ["python", "{script}", "--x=${{trialParameters.x}}", "--n=${{trialParameters.n}}", "--kind=${{trialParameters.kind}}"]
            restartPolicy: Never
"""

TRIAL_SCRIPT = """\
import argparse, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float); p.add_argument("--n", type=int); p.add_argument("--kind")
a = p.parse_args()
mode = os.environ.get("TRIAL_MODE", "ok")
loss = (a.x - 1) ** 2 + a.n + (0.5 if a.kind == "b" else 0)
if mode == "fail":
    sys.exit(3)
if mode == "nometric":
    print("training finished")
    sys.exit(0)
if mode == "custom":
    print(f"loss: {loss}")
    sys.exit(0)
time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
print(f"epoch=1 loss={loss + 1}")
print(f"loss={loss}")
"""


def write_experiment(folder: Path, name: str = "exp", objective: str = "minimize", algorithm: str = "random",
                     settings: dict | None = None, parallel: int = 1, max_trials: int = 4, goal: float | None = None,
                     max_failed: int | None = None, step: str | None = None, collector: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.py").write_text(TRIAL_SCRIPT)
    settings = settings if settings is not None else {"random_state": "1"}
    settings_yaml = ""
    if settings:
        settings_yaml = "    algorithmSettings:\n" + "".join(
            f'      - name: {k}\n        value: "{v}"\n' for k, v in settings.items())
    text = EXPERIMENT_TEMPLATE.format(
        name=name, objective=objective, algorithm=algorithm, settings=settings_yaml, parallel=parallel,
        max_trials=max_trials, goal=f"    goal: {goal}\n" if goal is not None else "",
        max_failed=f"  maxFailedTrialCount: {max_failed}\n" if max_failed is not None else "",
        step=f', step: "{step}"' if step else "", script="trial.py", collector=textwrap.indent(collector, "  "),
    )
    path = folder / "experiment.yaml"
    path.write_text(text)
    return path
