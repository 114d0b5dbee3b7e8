"""`make bench`: run every benchmark, print a table of figures, ratios and targets, write results.json."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_cli  # noqa: E402
import bench_data  # noqa: E402
import bench_engine  # noqa: E402
import bench_lineage  # noqa: E402
import bench_lines  # noqa: E402
import bench_ui  # noqa: E402
import bench_validate  # noqa: E402
from common import REPO, row  # noqa: E402


def serving(quick: bool) -> list[dict]:
    """bench_serving.py in its own process (it starts and stops both servers)."""
    import subprocess

    args = ["--requests", "300", "--rounds", "2"] if quick else ["--requests", "500", "--rounds", "3"]
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_serving.py"), "--json", *args],
                          capture_output=True, text=True, check=True)
    doc = json.loads(proc.stdout)
    rows = []
    build = doc.get("env_build_s") or {}
    if "cold" in build:
        rows.append(row("serving env build, cold (empty env folder and uv cache)", build["cold"], "s",
                        target="<= 20 s", ok=build["cold"] <= 20))
        rows.append(row("serving env build, uv cache warm", build["warm_uv_cache"], "s"))
    for clients in ("1", "8"):
        for server in ("mlserver", "mlflow"):
            r = doc["results"][server][clients]
            rows.append(row(f"{server}, {clients} client(s): req/s (p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms)",
                            r["rps"], "r/s"))
        ratio = doc["ratio_rps_mlserver_over_mlflow"][clients]
        rows.append(row(f"MLServer / mlflow models serve throughput, {clients} client(s)", ratio, "x", ratio,
                        ">= 1.0x", ratio >= 1.0))
    return rows

SUITES = {
    "cli": lambda quick: bench_cli.run(repeats=7 if quick else 15),
    "engine": lambda quick: bench_engine.run(repeats=1 if quick else 3),
    "engine-scale": lambda quick: bench_engine.scale((10, 100) if quick else (10, 100, 500)),
    "engine-sample": lambda quick: bench_engine.sample_project(1 if quick else 2),
    "engine-metrics": lambda quick: bench_engine.metrics(2 if quick else 5),
    "engine-sigterm": lambda quick: bench_engine.sigterm(2 if quick else 3),
    "data": lambda quick: bench_data.run(*((2000, 40, 3) if quick else (10_000, 200, 5))),
    "lines": lambda quick: bench_lines.run(),
    "lineage-scale": lambda quick: bench_lineage.run((1, 50) if quick else (1, 50, 500)),
    "serving": serving,
    "ui": lambda quick: bench_ui.run(repeats=1 if quick else 3),
    "validate": lambda quick: bench_validate.run(repeats=3 if quick else 7),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suites", nargs="*", choices=[*SUITES, []], help="which benchmarks (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    chosen = args.suites or list(SUITES)
    results = {"machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "suites": {}}
    for name in chosen:
        print(f"== {name}", flush=True)
        rows = SUITES[name](args.quick)
        results["suites"][name] = rows
        for r in rows:
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
            verdict = "" if r["ok"] is None else ("OK" if r["ok"] else "MISSED")
            print(f"  {r['name']:<60} {r['value']:>9.3f} {r['unit']:<3} {ratio:>7} {r['target'] or '':<20} {verdict}")
    out = Path(__file__).with_name("results.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
