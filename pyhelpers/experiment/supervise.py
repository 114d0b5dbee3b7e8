"""Nothing a trial starts outlives it or the engine — even a daemon that `setsid`s, even after kill -9.

The approach (no cgroups needed): every process of a trial carries an environment cookie
(``MLOPS_TRIAL_COOKIE``), which children inherit through fork/exec and keep across ``setsid`` and
double forks — the way Jenkins' ProcessTreeKiller finds a build's processes by its BUILD_ID /
JENKINS_NODE_COOKIE variable. Killing "the trial" means SIGKILL to every process whose
``/proc/<pid>/environ`` holds the cookie, repeated until none is left (a process may fork while we scan).

Three moments use it:
- a trial's main process ended: its leftovers go, as a container's processes end with its main process;
- the engine stops (done, SIGTERM/SIGINT, a crash): every trial of the run goes;
- the engine is killed with SIGKILL: a small guardian process (its own session, started by the engine,
  blocked reading a pipe only the engine holds) sees EOF and kills every process of the run, then marks
  the status document Failed (``ExperimentEngineKilled``) so it never stays "Running". If the guardian
  was killed too, the next run of the same Experiment reads the pidfile (``engine.json``), kills the
  leftovers and continues from the stale document.
Limit: a process that execs with an emptied environment (``env -i``) escapes the cookie; it still dies
with its process group when that group is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

RUN_COOKIE = "MLOPS_ENGINE_COOKIE"  # every trial of one engine run
HAS_PROC = os.path.isdir("/proc/self")
TRIAL_COOKIE = "MLOPS_TRIAL_COOKIE"  # the processes of one trial


def new_cookie() -> str:
    return uuid.uuid4().hex


def carriers(variable: str, value: str) -> list[int]:
    """Live processes (of this user) whose initial environment has ``variable=value``."""
    needle = f"{variable}={value}".encode()
    me = os.getpid()
    found = []
    if not HAS_PROC:  # no /proc (macOS): only process groups are killed
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:  # gone, or another user's process
            continue
        if needle in env.split(b"\0"):
            found.append(int(entry))
    return found


def kill_carriers(variable: str, value: str, rounds: int = 20) -> int:
    """SIGKILL every process carrying the cookie until none is left; how many were killed."""
    killed = 0
    for _ in range(rounds):
        pids = carriers(variable, value)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    return killed


def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot): with the pid it names one process, never a reused pid.
    Without /proc: 0 while the pid exists (a reused pid then counts as alive: the safe side)."""
    if not HAS_PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0
        return 0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def is_same_process(pid: int, ticks: int | None) -> bool:
    return ticks is not None and start_ticks(pid) == ticks


class Guardian:
    """A watcher that kills the run's processes when the engine dies, however it dies, and then marks
    the status document so it does not stay "Running" (Failed, ExperimentEngineKilled; its Running
    trials Killed) — unless the engine said it stopped cleanly."""

    def __init__(self, cookie: str, status_file: Path):
        read_end, write_end = os.pipe()
        env = {k: v for k, v in os.environ.items() if k not in (RUN_COOKIE, TRIAL_COOKIE)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _GUARDIAN_CODE, RUN_COOKIE, cookie, str(status_file), ENGINE_KILLED],
            stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True,  # Ctrl-C to the engine's group does not stop the guardian
        )
        os.close(read_end)
        self._write_end: int | None = write_end

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, clean: bool = True) -> None:
        """The engine is ending: the guardian checks once more for leftovers and exits. ``clean``: the
        engine wrote its final status (else, after a crash, the guardian marks it as for a kill)."""
        if self._write_end is not None:
            try:
                if clean:
                    os.write(self._write_end, CLEAN_EXIT)
            except OSError:
                pass
            os.close(self._write_end)
            self._write_end = None
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


ENGINE_KILLED = "ExperimentEngineKilled"
CLEAN_EXIT = b"clean"

# The guardian runs without importing pyhelpers: it starts in milliseconds and keeps working while
# the project's code is being edited. It waits for EOF on stdin (the engine's end of the pipe closes
# when the engine exits, for whatever reason), kills every process carrying the run's cookie, and
# when the engine did not say "clean" first, marks the status document as Katib's controller would
# mark an Experiment whose trials were all stopped: Running trials Killed, the Experiment Failed.
_GUARDIAN_CODE = """
import json, os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
variable, value, status_file, reason = sys.argv[1:5]
received = b""
while True:
    chunk = sys.stdin.buffer.read(4096)
    if not chunk:
        break
    received += chunk
needle = f"{variable}={value}".encode()
for _ in range(20 if os.path.isdir("/proc/self") else 0):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if needle in fh.read().split(b"\\0"):
                        pids.append(int(entry))
            except OSError:
                pass
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.02)
if b"clean" in received:
    sys.exit(0)
try:
    with open(status_file, encoding="utf-8") as fh:
        doc = json.load(fh)
    status = doc["status"]
    conditions = status["conditions"]
    trials = doc.get("trials") or []
except (OSError, ValueError, KeyError, TypeError):
    sys.exit(0)  # nothing written yet (the previous result, if any, is untouched), or not ours to fix
if any(c.get("type") in ("Succeeded", "Failed") and c.get("status") == "True" for c in conditions):
    sys.exit(0)
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
for trial in trials:
    if trial.get("condition") == "Running":
        trial.update(condition="Killed", message="Trial was stopped because the engine was killed",
                     completionTime=now)
names = lambda cond: [t.get("name") for t in trials if t.get("condition") == cond]
status.update(trialsRunning=0, runningTrialList=[], trialsKilled=len(names("Killed")),
              killedTrialList=names("Killed"), completionTime=now)
for cond in conditions:
    if cond.get("type") == "Running" and cond.get("status") == "True":
        cond.update(status="False", lastUpdateTime=now, lastTransitionTime=now)
conditions.append({"type": "Failed", "status": "True", "reason": reason,
                   "message": "The engine ended without finishing (killed, or it failed); its trials were "
                              "stopped. A rerun continues from the completed trials",
                   "lastUpdateTime": now, "lastTransitionTime": now})
tmp = os.path.join(os.path.dirname(status_file), f".guardian-{os.getpid()}.json")
try:
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\\n")
    os.replace(tmp, status_file)
except OSError:  # a full disk: the last snapshot stays as it was, whole
    try:
        os.unlink(tmp)
    except OSError:
        pass
"""


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def read_tail(path: Path, max_bytes: int = 4096) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
