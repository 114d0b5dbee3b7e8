"""One writer per project: concurrent runs of the lines never mix (real processes, one project).

Before the project lock, two `line data` runs shared the Experiment folder (a trial failure that
never happened, two different Slack messages for one data version), and two `line deploy` runs
registered two model versions for the same data, parameters and commit (on a fresh MLflow store
the second died in MLflow's schema migration).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MLOPS, make_project, run_mlops, write_experiment
from tests.reliability.test_faults import champion_file

HOLDER = """\
import sys, time
from pyhelpers.lock import project_lock
with project_lock(sys.argv[1], "mlops line data"):
    print("held", flush=True)
    time.sleep(60)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "SLACK_", "MLFLOW_"))}
    return {**env, **extra}


def _together(project: Path, *args: str, wait: str = "600") -> list[tuple[int, dict, str]]:
    """Start two identical `mlops ARGS --json` at the same moment; (exit code, JSON, stderr) of each."""
    procs = [subprocess.Popen([MLOPS, *args, "--json"], cwd=project, env=_env(MLOPS_LOCK_WAIT=wait),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        out.append((proc.returncode, json.loads(stdout) if stdout.strip() else {}, stderr))
    return out


def _notifications(project: Path) -> list[dict]:
    path = project / ".mlops" / "notifications.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_a_busy_project_is_refused_naming_the_holder(tmp_path):
    """Without MLOPS_LOCK_WAIT the second writer stops at once (exit 1, one line: since when, which pid)."""
    (tmp_path / "mlops.yaml").write_text("project: busy\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / ".mlops")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        champion = str(champion_file(tmp_path, "1"))
        spec = str(write_experiment(tmp_path / "exp", name="busy"))
        for args in (["line", "data"], ["line", "deploy"], ["model", "train"], ["model", "register"],
                     ["data", "pull"], ["deploy", "push", "--champion", champion], ["experiment", "run", "--local", spec]):
            r = run_mlops(*args, cwd=tmp_path)
            assert r.code == 1, (args, r)
            line = r.err.strip().splitlines()[-1]
            assert "another run holds the lock of this project since" in line, (args, line)
            assert f"pid {holder.pid}" in line and "mlops line data" in line, line
        assert time.monotonic() - started < 60
        r = run_mlops("line", "data", cwd=tmp_path, env={"MLOPS_LOCK_WAIT": "1"})
        assert r.code == 1 and "after waiting 1 s" in r.err, r
        r = run_mlops("line", "data", cwd=tmp_path, env={"MLOPS_LOCK_WAIT": "soon"})
        assert r.code == 2 and "MLOPS_LOCK_WAIT" in r.err, r
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing anything: the kernel dropped its flock, the next run proceeds
    r = run_mlops("config", "validate", cwd=tmp_path)
    assert r.code == 0
    r = run_mlops("model", "register", cwd=tmp_path)
    assert "another run holds the lock" not in r.err, r


@pytest.mark.slow  # ~90 s: an Experiment, a training and a registration; the lock itself is checked above
def test_two_data_lines_then_two_deploy_lines_at_once(tmp_path):
    """Both pairs started together (waiting for the lock): one does the work, the other finds it done.
    One Experiment, one notification per data version, one model version, one GitOps commit."""
    project = make_project(tmp_path / "taxi-fare", rows=300, max_trials=3)

    results = _together(project, "line", "data", "--local")
    assert [code for code, _, _ in results] == [0, 0], [err[-1500:] for _, _, err in results]
    statuses = sorted(doc["status"] for _, doc, _ in results)
    assert statuses == ["completed", "unchanged"], statuses
    done = next(doc for _, doc, _ in results if doc["status"] == "completed")
    assert done["phase"] == "Succeeded"
    status = json.loads(Path(done["status_file"]).read_text())
    assert status["status"]["trialsFailed"] == 0 and status["status"]["trials"] == 3
    assert len(list((project / ".mlops" / "experiments").glob("*/experiment.json"))) == 1
    experiment_notes = [n for n in _notifications(project) if n["kind"] == "experiment"]
    assert len(experiment_notes) == 1, experiment_notes

    results = _together(project, "line", "deploy")
    assert [code for code, _, _ in results] == [0, 0], [err[-1500:] for _, _, err in results]
    statuses = sorted(doc["status"] for _, doc, _ in results)
    assert statuses == ["completed", "unchanged"], statuses
    assert {doc["candidate_version"] for _, doc, _ in results} == {"1"}

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / '.mlops' / 'mlflow' / 'mlflow.db'}")
    versions = client.search_model_versions("name='taxi-fare'")
    assert [v.version for v in versions] == [1] or [int(v.version) for v in versions] == [1]
    log = subprocess.run(["git", "-C", str(project / ".mlops" / "gitops.git"), "log", "--oneline"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(log) == 1, log
    assert len([n for n in _notifications(project) if n["kind"] == "deployment"]) == 1
    assert not (project / ".mlops" / "mlops.lock").exists()
