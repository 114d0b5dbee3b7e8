"""CLI start-up: `mlops --help`, `config validate`, `experiment run --dry-run` vs `dvc --help`, `mlflow --help`."""

from __future__ import annotations

from common import BIN, REPO, interleaved, row

EXAMPLE = REPO / "examples" / "taxi-fare"


def run(repeats: int = 15) -> list[dict]:
    mlops, cwd = str(BIN / "mlops"), {"cwd": EXAMPLE}
    times = interleaved({
        "mlops --help": ([mlops, "--help"], {}),
        "mlops config validate": ([mlops, "config", "validate"], cwd),
        "mlops experiment run --local --dry-run": ([mlops, "experiment", "run", "--local", "--dry-run"], cwd),
        "dvc --help": ([str(BIN / "dvc"), "--help"], {}),
        "mlflow --help": ([str(BIN / "mlflow"), "--help"], {}),
    }, repeats)
    dvc, mlflow = times["dvc --help"], times["mlflow --help"]
    rows = [row("dvc --help", dvc, "s"), row("mlflow --help", mlflow, "s")]
    for name in ("mlops --help", "mlops config validate", "mlops experiment run --local --dry-run"):
        ratio = times[name] / dvc
        target = "<= 1.5x dvc --help" if name == "mlops --help" else None
        rows.append(row(f"{name} / dvc --help", times[name], "s", ratio, target,
                        ratio <= 1.5 if target else None))
        rows.append(row(f"{name} / mlflow --help", times[name], "s", times[name] / mlflow))
    return rows
