"""Nothing outlives a run (outside the local engine, whose own cases are in test_faults.py/test_engine.py).

`mlops model train` killed with SIGKILL: the trainer dies with it (its own process group plus
PR_SET_PDEATHSIG), and the next run removes the scratch folder and marks the MLflow run that was
left RUNNING as FAILED. SIGTERM stops it within seconds, trainer included, with the run FAILED and
no scratch folder. A GitOps clone left by a killed `deploy push` is removed by the next push.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._model_project import CHEAP, load, make_project, write_status
from tests.reliability.conftest import alive

TRAINER = """\
import os, sys, time
from pathlib import Path
Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
if os.environ.get("TRAINER_FAIL"):
    sys.exit(3)
time.sleep(120)
"""


@pytest.fixture
def slow_project(tmp_path):
    config = make_project(tmp_path / "proj", rows=50, extra_config={"training": {"command": ["python", "trainer.py"]}})
    (config.parent / "trainer.py").write_text(TRAINER)
    cfg = load(config)
    write_status(cfg, CHEAP)
    return config, cfg


def _start_train(config: Path, pid_file: Path, **env: str) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    full_env.update({"PID_FILE": str(pid_file), **env})
    return subprocess.Popen([sys.executable, "-m", "pyhelpers", "--config", str(config), "model", "train"],
                            cwd=config.parent, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def _runs(cfg) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(cfg.tracking_uri)
    exp = client.get_experiment_by_name(cfg.mlflow_experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_sigkill_of_model_train_leaves_no_trainer_and_the_next_run_cleans_up(slow_project, tmp_path):
    config, cfg = slow_project
    pid_file = tmp_path / "trainer.pid"
    proc = _start_train(config, pid_file)
    trainer = _wait_for(pid_file)
    proc.kill()
    proc.communicate(timeout=30)
    try:
        assert _gone(trainer), "the trainer outlived `mlops model train` (SIGKILL)"
    finally:
        if alive(trainer):
            os.kill(trainer, signal.SIGKILL)
    scratch = cfg.state_path("tmp")
    assert [p.name for p in scratch.iterdir()], "expected the killed run's scratch folder (it had no chance to clean)"
    assert [r.info.status for r in _runs(cfg)] == ["RUNNING"]

    pid_file.unlink()
    rerun = _start_train(config, pid_file, TRAINER_FAIL="1")  # a quick trainer: only the clean-up matters here
    out, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 1, err
    assert "left RUNNING by process" in err and "marked FAILED" in err
    statuses = sorted(r.info.status for r in _runs(cfg))
    assert statuses == ["FAILED", "FAILED"], statuses  # the abandoned one and the failing rerun
    assert not list(scratch.iterdir()), "scratch folders were left behind"
    assert not cfg.state_path("mlops.lock").exists()


def test_sigterm_stops_model_train_and_its_trainer_within_seconds(slow_project, tmp_path):
    config, cfg = slow_project
    pid_file = tmp_path / "trainer.pid"
    proc = _start_train(config, pid_file)
    trainer = _wait_for(pid_file)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    stopped_in = time.monotonic() - started
    try:
        assert _gone(trainer, timeout=2), "the trainer outlived a SIGTERM of `mlops model train`"
    finally:
        if alive(trainer):
            os.kill(trainer, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert stopped_in < 10, stopped_in
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "mlops: interrupted"
    assert [r.info.status for r in _runs(cfg)] == ["FAILED"]
    assert not list(cfg.state_path("tmp").iterdir())


def test_a_killed_push_clone_is_removed_by_the_next_push(tmp_path):
    from pyhelpers.fsutil import host_name
    from tests.reliability.test_faults import champion_file

    (tmp_path / "mlops.yaml").write_text("project: leftovers\n")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs, as a SIGKILLed push leaves it
    leftover = tmp_path / ".mlops" / "tmp" / f"gitops--{host_name()}--{dead.pid}-abc123"
    (leftover / "work" / ".git").mkdir(parents=True)
    foreign = tmp_path / ".mlops" / "tmp" / f"gitops--other-host--{dead.pid}-abc123"  # maybe alive elsewhere
    foreign.mkdir()
    r = subprocess.run([sys.executable, "-m", "pyhelpers", "deploy", "push", "--champion",
                        str(champion_file(tmp_path, "1"))], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not leftover.exists()
    assert foreign.exists(), "a folder of another host's process must be left alone"
    assert {p.name for p in (tmp_path / ".mlops" / "tmp").iterdir()} == {foreign.name}


def test_full_disk_when_the_mlflow_store_is_created_is_one_clear_line(tmp_path):
    """A fresh SQLite store on a full disk (RLIMIT_FSIZE 20 kB): one line naming the cause, exit 1."""
    import resource

    (tmp_path / "mlops.yaml").write_text("project: full\n")

    def full_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    r = subprocess.run([sys.executable, "-m", "pyhelpers", "model", "champion"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120, preexec_fn=full_disk)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "SQLite store cannot write" in r.stderr and "disk" in r.stderr, r.stderr
    assert "SQL:" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # ~70 s: a real training; the store case above is the fast one
def test_full_disk_under_the_mlflow_store_is_one_clear_line(tmp_path):
    """The disk fills up while `model train` logs the model (RLIMIT_FSIZE just above the store's size):
    exit 1 with one error line that says so (not a library's guess such as "could not be serialized"),
    no traceback, the run FAILED, no scratch folder left."""
    import resource

    config = make_project(tmp_path / "proj", rows=100)
    cfg = load(config)
    write_status(cfg, CHEAP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))}
    argv = [sys.executable, "-m", "pyhelpers", "--config", str(config)]
    warm = subprocess.run([*argv, "model", "champion"], env=env, capture_output=True, text=True, timeout=120)
    assert warm.returncode == 0, warm.stderr  # the store exists: only the training's writes hit the limit
    limit = cfg.state_path("mlflow", "mlflow.db").stat().st_size + 4096

    def full_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run([*argv, "model", "train"], env=env, capture_output=True, text=True, timeout=300,
                       preexec_fn=full_disk)
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("mlops: error:")]
    assert len(errors) == 1 and "out of disk space" in errors[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) < 20
    assert [run.info.status for run in _runs(cfg)] == ["FAILED"]
    assert not list(cfg.state_path("tmp").iterdir())
