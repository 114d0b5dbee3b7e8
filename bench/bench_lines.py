"""Both lines end to end on a fresh copy of the sample project, after set-up (venvs and the
serving environment already built): wall time and the peak memory of the largest process."""

from __future__ import annotations

import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import BIN, REPO, env_with_venv, row


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env_with_venv(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def run() -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-lines-"))
    project = folder / "taxi-fare"
    mlops = str(BIN / "mlops")
    try:
        subprocess.run([str(REPO / "examples" / "prepare_demo.sh"), str(project)], check=True,
                       capture_output=True, env=env_with_venv())
        # free ports, so a server left on the defaults (8765/8766) cannot spoil the run
        config = project / "mlops.yaml"
        config.write_text(config.read_text().replace(
            "  replicas: 1\n", f"  replicas: 1\n  serve_port: {_free_port()}\n  metrics_port: {_free_port()}\n"))
        data = _timed([mlops, "line", "data", "--local"], project)
        deploy = _timed([mlops, "line", "deploy", "--local"], project)
        reruns = []
        for _ in range(3):  # the no-op every multibranch build runs when the data did not change
            reruns.append((_timed([mlops, "line", "data", "--local"], project),
                           _timed([mlops, "line", "deploy", "--local"], project)))
        noop_data, noop_deploy, rerun = (sorted(x)[1] for x in ([d for d, _ in reruns], [p for _, p in reruns],
                                                                [d + p for d, p in reruns]))
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        subprocess.run([mlops, "deploy", "stop"], cwd=project, capture_output=True, env=env_with_venv())
        return [
            row("line 1 (data -> 8-trial experiment -> notify)", data, "s"),
            row("line 2 (train -> register -> render -> serve + smoke -> push)", deploy, "s"),
            row("both lines, wall", data + deploy, "s", target="<= 60 s", ok=data + deploy <= 60),
            row("both lines rerun with nothing new (no-op, median of 3)", rerun, "s", target="<= 1.5 s",
                ok=rerun <= 1.5),
            row("  of which line 1 no-op (no DVC import)", noop_data, "s"),
            row("  of which line 2 no-op (no MLflow import)", noop_deploy, "s"),
            row("peak RSS of the largest process", peak_mb, "MB"),
        ]
    finally:
        subprocess.run([mlops, "deploy", "stop"], cwd=project, capture_output=True, env=env_with_venv())
        shutil.rmtree(folder, ignore_errors=True)
