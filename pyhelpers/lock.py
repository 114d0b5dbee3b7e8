"""One writer per project: an exclusive lock around the commands that change a project's state.

``fcntl.flock`` on ``<state>/mlops.lock``: the kernel releases it when the holder's process dies,
however it dies (SIGKILL included), so a crashed run never wedges the next one. The file also says
who holds it (pid, host, start time, command); a dead holder's details are simply overwritten.

By default a second run fails at once (exit 1) naming the holder: a pipeline that queues silently
behind a stuck run is worse than one that says why it stopped. ``MLOPS_LOCK_WAIT=SECONDS`` makes it
wait up to that long instead (e.g. two Jenkins branches sharing one agent workspace).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from pyhelpers.errors import BadInput, OperationFailed

LOCK_FILE = "mlops.lock"
WAIT_ENV = "MLOPS_LOCK_WAIT"
POLL_SECONDS = 0.2

_held: dict[str, int] = {}  # lock path -> depth: a command that calls another locked part re-enters


def wait_seconds(environ: dict[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    raw = env.get(WAIT_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0 <= value < 86400):  # also refuses nan and inf
        raise BadInput(f"${WAIT_ENV}: expected seconds between 0 and 86400, got {raw[:40]!r}")
    return value


def holder(path: Path) -> dict:
    """Who holds (or last held) the lock, as written by the holder; {} when unreadable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _busy_message(path: Path, waited: float) -> str:
    info = holder(path)
    since = info.get("started", "an unknown time")
    who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}"
    what = f" (`{info['command']}`)" if info.get("command") else ""
    after = f" after waiting {waited:.0f} s" if waited else ""
    return (f"another run holds the lock of this project since {since}, {who}{what}{after}; "
            f"wait for it to finish, or set {WAIT_ENV}=SECONDS to wait ({path})")


@contextlib.contextmanager
def project_lock(state: str | os.PathLike, command: str, wait: float | None = None) -> Iterator[Path]:
    """Hold the project's lock for the block; exit 1 naming the holder when another run has it."""
    state = Path(state)
    path = state / LOCK_FILE
    key = str(path.resolve())
    if _held.get(key):
        _held[key] += 1
        try:
            yield path
        finally:
            _held[key] -= 1
        return
    wait = wait_seconds() if wait is None else wait
    created_state = not state.exists()
    started = time.monotonic()
    fd = _acquire(state, path, wait, started)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)  # replaces a crashed holder's details
        _held[key] = 1
        try:
            yield path
        finally:
            _held.pop(key, None)
            # Removed while still held, so a run that finishes leaves no trace (a refused input writes
            # nothing); waiters that opened this file notice it is gone and open the new one.
            with contextlib.suppress(OSError):
                path.unlink()
            if created_state:
                with contextlib.suppress(OSError):
                    state.rmdir()  # only when empty: the command wrote nothing else
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(state: Path, path: Path, wait: float, started: float) -> int:
    """Open and flock the lock file; retried when the file was replaced meanwhile (a holder removed it)."""
    while True:
        try:
            state.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OperationFailed(f"cannot create the project lock {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            waited = time.monotonic() - started
            if waited >= wait:
                raise OperationFailed(_busy_message(path, waited if wait else 0)) from None
            time.sleep(min(POLL_SECONDS, wait - waited))
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # we locked a file its holder had just removed: take the current one
