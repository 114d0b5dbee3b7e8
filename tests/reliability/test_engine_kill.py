"""kill -9 of the local engine: nothing it started survives, and a rerun continues from the completed trials.

The engine's trials carry an environment cookie (pyhelpers/experiment/supervise.py); a guardian
process kills them when the engine dies; if the guardian is killed too, the next run does it from
the pidfile before anything else. Processes are checked in /proc, never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import MLOPS, run_mlops, write_experiment
from tests.reliability.conftest import alive

# The first two trials report at once; later ones (while `block` exists) start a child in their
# group and a setsid daemon outside it, record all pids, and hang.
TRIAL = """\
import argparse, os, subprocess, sys, time
from pathlib import Path
here = Path(__file__).resolve().parent
p = argparse.ArgumentParser()
p.add_argument("--x", type=float); p.add_argument("--n", type=int); p.add_argument("--kind")
a = p.parse_args()
def take_ticket():  # the how-manieth trial process this is, across runs
    for i in range(1000):
        try:
            os.close(os.open(here / "tickets" / str(i), os.O_CREAT | os.O_EXCL))
            return i
        except FileExistsError:
            pass
ticket = take_ticket()
if ticket >= 2 and (here / "block").exists():
    child = subprocess.Popen(["sleep", "120"])
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            (here / "pids" / f"daemon-{os.getpid()}").touch()
            time.sleep(120)
        os._exit(0)
    (here / "pids" / f"trial-{os.getpid()}").touch()
    (here / "pids" / f"child-{child.pid}").touch()
    time.sleep(120)
print(f"loss={(a.x - 1) ** 2 + a.n}")
"""


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def recorded(folder: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"trial": [], "child": [], "daemon": []}
    for p in (folder / "pids").iterdir():
        kind, pid = p.name.split("-")
        out[kind].append(int(pid))
    return out


def doc_of(folder: Path) -> dict | None:
    try:
        return json.loads((folder / ".mlops" / "experiments" / "exp" / "experiment.json").read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.parametrize("guardian_killed", [False, True], ids=["engine-killed", "engine-and-guardian-killed"])
def test_sigkill_of_the_engine_then_rerun(tmp_path, guardian_killed):
    path = write_experiment(tmp_path, parallel=2, max_trials=5)
    (tmp_path / "trial.py").write_text(textwrap.dedent(TRIAL))
    for folder in ("tickets", "pids"):
        (tmp_path / folder).mkdir()
    (tmp_path / "block").touch()
    proc = subprocess.Popen([MLOPS, "experiment", "run", "--local", "--json", str(path)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(recorded(tmp_path)["daemon"]) == 2 and len(recorded(tmp_path)["trial"]) == 2,
                   what="two hanging trials with their daemons")
        wait_until(lambda: (doc_of(tmp_path) or {}).get("status", {}).get("trialsSucceeded") == 2,
                   what="two completed trials in the status document")
        pidfile = json.loads((tmp_path / ".mlops" / "experiments" / "exp" / "engine.json").read_text())
        assert pidfile["pid"] == proc.pid
        if guardian_killed:
            os.kill(pidfile["guardian_pid"], signal.SIGKILL)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pids = [pid for group in recorded(tmp_path).values() for pid in group]
    if guardian_killed:
        time.sleep(0.5)
        assert any(alive(pid) for pid in pids), "nothing was left to clean up: the case tests nothing"
        before = doc_of(tmp_path)
        assert before["status"]["conditions"][-1]["type"] == "Running"  # stale until the rerun, but whole
        stopped_condition = "Running"
    else:  # the guardian kills every process of the run at once and marks the status
        wait_until(lambda: not any(alive(pid) for pid in pids), 10, "the trials and daemons to die")
        wait_until(lambda: doc_of(tmp_path)["status"]["conditions"][-1]["type"] == "Failed", 10, "the status")
        before = doc_of(tmp_path)
        cond = before["status"]["conditions"][-1]
        assert cond["reason"] == "ExperimentEngineKilled" and before["status"]["trialsRunning"] == 0
        assert [c["status"] for c in before["status"]["conditions"] if c["type"] == "Running"] == ["False"]
        assert before["status"]["trialsKilled"] == 2 and len(before["status"]["killedTrialList"]) == 2
        stopped_condition = "Killed"

    (tmp_path / "block").unlink()
    r = run_mlops("experiment", "run", "--local", "--json", str(path), cwd=tmp_path, timeout=120)
    assert r.code == 0, r
    assert not [pid for pid in pids if alive(pid)], "processes of the killed engine survived the rerun"
    doc = r.json()
    kept = [t for t in before["trials"] if t["condition"] == "Succeeded"]
    assert doc["trials"][:2] == kept  # the completed trials continue as they were
    stopped = [t for t in before["trials"] if t["condition"] == stopped_condition]
    assert len(stopped) == 2
    rerun = {json.dumps(t["parameterAssignments"]) for t in doc["trials"][2:4]}
    assert rerun == {json.dumps(t["parameterAssignments"]) for t in stopped}  # run again with their assignments
    assert [t["condition"] for t in doc["trials"]] == ["Succeeded"] * 5
    assert [t["name"] for t in doc["trials"]] == [f"exp-000{i}" for i in range(1, 6)]
    assert doc["status"]["trials"] == 5 and doc["status"]["trialsRunning"] == 0
    assert doc["status"]["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
    out_dir = tmp_path / ".mlops" / "experiments" / "exp"
    assert sorted(p.name for p in (out_dir / "trials").iterdir()) == [f"exp-000{i}.log" for i in range(1, 6)]
    assert not (out_dir / "engine.json").exists()
    assert len(list((tmp_path / "tickets").iterdir())) == 7  # 2 + 2 killed + 3 in the rerun: none twice


def test_a_second_engine_on_the_same_experiment_is_refused(tmp_path):
    path = write_experiment(tmp_path, max_trials=2)
    (tmp_path / "trial.py").write_text("import time\ntime.sleep(120)\n")
    proc = subprocess.Popen([MLOPS, "experiment", "run", "--local", str(path)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: doc_of(tmp_path) is not None, what="the first engine to start a trial")
        r = run_mlops("experiment", "run", "--local", str(path), cwd=tmp_path)
        # refused by the engine's pidfile, or earlier by the project lock around it: either names the holder
        assert r.code == 1 and f"pid {proc.pid}" in r.err and "Traceback" not in r.err, r
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 1  # interrupted, and it said so in its status
    assert doc_of(tmp_path)["status"]["conditions"][-1]["reason"] == "ExperimentInterrupted"


def test_the_engine_pidfile_refuses_a_live_engine_and_clears_a_dead_ones_leftovers(tmp_path):
    """Below the project lock: the engine's own pidfile (engine.json). A live holder (same pid and
    start time) is refused; a dead one's processes — found by its cookie — are killed first."""
    from pyhelpers.errors import OperationFailed
    from pyhelpers.experiment import supervise
    from pyhelpers.experiment.engine import LocalEngine, PlainReporter
    from pyhelpers.experiment.spec import load_spec

    spec = load_spec(write_experiment(tmp_path, max_trials=1))
    out = tmp_path / ".mlops" / "experiments" / "exp"
    out.mkdir(parents=True)
    me = {"pid": os.getpid(), "start_ticks": supervise.start_ticks(os.getpid()), "cookie": "c1", "started": "then"}
    (out / "engine.json").write_text(json.dumps(me))
    quiet = PlainReporter(lambda line: None)
    with pytest.raises(OperationFailed, match=f"being run by another engine \\(pid {os.getpid()}"):
        LocalEngine(spec, out, reporter=quiet).run()
    assert not (out / "experiment.json").exists()

    # a dead engine (a pid that exited) whose trial still runs: the cookie finds it
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = subprocess.Popen(["sleep", "120"], env={**os.environ, supervise.RUN_COOKIE: "c2"},
                                start_new_session=True)
    (out / "engine.json").write_text(json.dumps({"pid": dead.pid, "start_ticks": 1, "cookie": "c2"}))
    try:
        doc = LocalEngine(spec, out, reporter=quiet).run()
        assert leftover.wait(10) == -signal.SIGKILL
    finally:
        if leftover.poll() is None:
            leftover.kill()
    assert doc["status"]["trialsSucceeded"] == 1 and not (out / "engine.json").exists()


def test_an_engine_that_crashes_leaves_no_running_status(tmp_path, monkeypatch):
    """A bug in the engine after its first trial started: the exception propagates, the trial is
    stopped, and the guardian marks the status it had written (Failed, ExperimentEngineKilled);
    a rerun continues from it."""
    from pyhelpers.experiment.engine import LocalEngine, PlainReporter
    from pyhelpers.experiment.spec import load_spec

    spec = load_spec(write_experiment(tmp_path, max_trials=2))
    out = tmp_path / ".mlops" / "experiments" / "exp"
    quiet = PlainReporter(lambda line: None)

    def broken(self, trial, study):
        raise RuntimeError("a bug")

    monkeypatch.setattr(LocalEngine, "_finish", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        LocalEngine(spec, out, reporter=quiet).run()
    doc = json.loads((out / "experiment.json").read_text())
    assert doc["status"]["conditions"][-1]["reason"] == "ExperimentEngineKilled"
    assert doc["status"]["trialsRunning"] == 0 and [t["condition"] for t in doc["trials"]] == ["Killed"]
    monkeypatch.undo()
    again = LocalEngine(spec, out, reporter=quiet).run()
    assert [t["condition"] for t in again["trials"]] == ["Succeeded", "Succeeded"]
    assert again["status"]["conditions"][-1]["reason"] == "ExperimentMaxTrialsReached"
