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
  blocked reading a pipe only the engine holds) sees EOF and kills every process of the run. If the
  guardian was killed too, the next run of the same Experiment reads the pidfile (``engine.json``) and
  does the same before anything else.
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
TRIAL_COOKIE = "MLOPS_TRIAL_COOKIE"  # the processes of one trial


def new_cookie() -> str:
    return uuid.uuid4().hex


def carriers(variable: str, value: str) -> list[int]:
    """Live processes (of this user) whose initial environment has ``variable=value``."""
    needle = f"{variable}={value}".encode()
    me = os.getpid()
    found = []
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
    """The process's start time (clock ticks since boot): with the pid it names one process, never a reused pid."""
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
    """A watcher that kills the run's processes when the engine dies, however it dies."""

    def __init__(self, cookie: str):
        read_end, write_end = os.pipe()
        env = {k: v for k, v in os.environ.items() if k not in (RUN_COOKIE, TRIAL_COOKIE)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _GUARDIAN_CODE, RUN_COOKIE, cookie],
            stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True,  # Ctrl-C to the engine's group does not stop the guardian
        )
        os.close(read_end)
        self._write_end = write_end

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """The engine cleaned up itself: let the guardian check once more and exit."""
        if self._write_end is not None:
            os.close(self._write_end)
            self._write_end = None
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# The guardian runs without importing pyhelpers: it starts in milliseconds and keeps working while
# the project's code is being edited. It waits for EOF on stdin (the engine's end of the pipe closes
# when the engine exits, for whatever reason), then kills every process carrying the run's cookie.
_GUARDIAN_CODE = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
variable, value = sys.argv[1], sys.argv[2]
while sys.stdin.buffer.read(4096):
    pass
needle = f"{variable}={value}".encode()
for _ in range(20):
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
