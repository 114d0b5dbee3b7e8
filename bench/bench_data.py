"""`mlops data status` vs `dvc status` on a generated dataset (default 10,000 files, 200 MB).

What mlops adds on top of DVC's own status: reading the .dvc files at HEAD for the data version,
and the processed marker. Target: at most 10% over `dvc status`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import BIN, env_with_venv, interleaved, row


def make_repo(folder: Path, files: int, total_mb: int) -> Path:
    repo = folder / "data-repo"
    data = repo / "data" / "blobs"
    data.mkdir(parents=True)
    size = total_mb * 1024 * 1024 // files
    for i in range(files):
        sub = data / f"{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    env = env_with_venv()
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"],
                [str(BIN / "dvc"), "config", "core.analytics", "false"],
                [str(BIN / "dvc"), "add", "-q", "data/blobs"], ["git", "add", "-A"],
                ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "data"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env, capture_output=True)
    (repo / "mlops.yaml").write_text("project: bench-data\ndata:\n  paths: [data/blobs]\n")
    return repo


def run(files: int = 10_000, total_mb: int = 200, repeats: int = 5) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-data-"))
    try:
        repo = make_repo(folder, files, total_mb)
        times = interleaved({
            "dvc status": ([str(BIN / "dvc"), "status", "data/blobs.dvc"], {"cwd": repo}),
            "mlops data status": ([str(BIN / "mlops"), "data", "status"], {"cwd": repo}),
        }, repeats)
        base, ours = times["dvc status"], times["mlops data status"]
        return [row(f"dvc status, {files} files / {total_mb} MB", base, "s"),
                row("mlops data status / dvc status", ours, "s", ours / base, "<= 1.10x", ours / base <= 1.10)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
