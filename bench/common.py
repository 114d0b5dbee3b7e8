"""Timing helpers for the benchmarks: interleaved repeats, medians, ratios (machines here are noisy)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))  # the benchmarks use a few pyhelpers functions directly


def env_with_venv() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def wall(cmd: list[str] | str, cwd: Path | None = None, shell: bool = False, check: bool = True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, shell=shell, env=env_with_venv(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(f"benchmark command failed ({proc.returncode}): {cmd}")
    return elapsed


def interleaved(commands: dict[str, tuple], repeats: int) -> dict[str, float]:
    """Median wall time of each command, running them in turn so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, (cmd, kwargs) in commands.items():
            samples[name].append(wall(cmd, **kwargs))
    return {name: statistics.median(values) for name, values in samples.items()}


def row(name: str, value: float, unit: str, ratio: float | None = None, target: str | None = None,
        ok: bool | None = None) -> dict:
    return {"name": name, "value": round(value, 4), "unit": unit,
            "ratio": None if ratio is None else round(ratio, 3), "target": target, "ok": ok}
