"""`mlops ui`: time until the MLflow UI answers and the memory it holds (targets: 10 s, 600 MB RSS).

The UI runs on a copy-free project with a SQLite store; RSS is summed over `mlops ui` itself and
every process of the server's session (mlflow server and its uvicorn worker).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import BIN, env_with_venv, row


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants (the server runs in a session of its own)."""
    parents: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int(Path(proc, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(proc.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += parents.get(pid, [])
    return found


def once(project: Path) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "mlops"), "ui"], cwd=project, env=env_with_venv(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()  # "MLflow UI: http://127.0.0.1:PORT (ready in …)" once it answers
        if not line.startswith("MLflow UI: "):
            raise RuntimeError(f"mlops ui did not start: {line!r}")
        url = line.split()[2]
        with urllib.request.urlopen(url + "/", timeout=10) as resp:  # the UI page itself
            resp.read()
        ready = time.perf_counter() - start
        time.sleep(2)  # settled memory, not the start-up peak
        rss = _rss_mb(_tree(proc.pid))
        return ready, rss
    finally:
        proc.send_signal(signal.SIGTERM)  # mlops ui stops its server's process group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(repeats: int = 3) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="mlops-bench-ui-") as tmp:
        project = Path(tmp)
        (project / "mlops.yaml").write_text("project: bench-ui\n")
        samples = [once(project) for _ in range(repeats)]
    ready = statistics.median(s[0] for s in samples)
    rss = max(s[1] for s in samples)
    return [
        row("mlops ui: until the UI answers (median)", ready, "s", target="<= 10 s", ok=ready <= 10),
        row("mlops ui: RSS of mlops + MLflow server processes (max)", rss, "MB", target="<= 600 MB", ok=rss <= 600),
    ]


if __name__ == "__main__":
    for r in run(3):
        print(r)
