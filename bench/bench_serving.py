#!/usr/bin/env python
"""Serving throughput: the local MLServer (`mlops deploy serve --local`) vs `mlflow models serve`.

Both serve the same registered sklearn model on 127.0.0.1 with one worker process each
(MLServer ``parallel_workers: 0``; ``mlflow models serve --workers 1``). The client sends the
model's input example over keep-alive HTTP connections, first from 1 client, then from 8
concurrent clients (threads), and reports requests/s, p50 and p99 latency, and the ratio
MLServer / mlflow. Client and servers share this machine's cores, as they do for both servers.

    python bench/bench_serving.py [--requests 500] [--rounds 3] [--json]

The serving env is taken from $MLOPS_SERVING_ENVS_DIR (default build/serving-envs), so a
`make test` run before makes this start in seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyhelpers.config import load_config  # noqa: E402
from pyhelpers.deploy.serve import free_port, serve_local, stop_local  # noqa: E402
from pyhelpers.deploy.smoke import load_input_example, percentile, v2_request  # noqa: E402


def make_model(root: Path) -> dict:
    """A tiny registered sklearn model with the alias `champion`; returns its champion description."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    exp = mlflow.create_experiment("bench", artifact_location=f"{root}/mlruns")
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 1.0, 3.0, 2.0]})
    model = LinearRegression().fit(X, 2 * X["a"] - X["b"] + 1)
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="bench-model",
                                        input_example=X.head(1))
    client = MlflowClient()
    version = str(info.registered_model_version)
    client.set_registered_model_alias("bench-model", "champion", version)
    return {"name": "bench-model", "version": version, "model_uri": f"models:/bench-model/{version}",
            "artifact_uri": client.get_model_version_download_uri("bench-model", version)}


def cold_build(cfg, model_dir: str) -> dict:
    """Build the model's serving environment from nothing: an empty env folder and an empty uv cache
    (every wheel downloaded), then again with the uv cache warm (the usual case on a CI agent)."""
    from pyhelpers.deploy.serve import ensure_serving_env

    requirements = (Path(model_dir) / "requirements.txt").read_text(encoding="utf-8")
    saved = {k: os.environ.get(k) for k in ("MLOPS_SERVING_ENVS_DIR", "UV_CACHE_DIR")}
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-build-") as tmp:
        try:
            os.environ["UV_CACHE_DIR"] = str(Path(tmp, "uv-cache"))
            for label in ("cold", "warm_uv_cache"):
                os.environ["MLOPS_SERVING_ENVS_DIR"] = str(Path(tmp, f"envs-{label}"))
                start = time.perf_counter()
                ensure_serving_env(cfg, requirements)
                figures[label] = round(time.perf_counter() - start, 2)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return figures


def start_mlflow_serve(model_dir: str, port: int, log_path: Path) -> subprocess.Popen:
    bin_dir = Path(sys.executable).parent  # `mlflow models serve` needs uvicorn on PATH
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(bin_dir / "mlflow"), "models", "serve", "-m", model_dir, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow models serve exited ({proc.returncode}); see {log_path}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.25)
    stop_group(proc.pid)
    raise SystemExit(f"mlflow models serve was not ready within 120 s; see {log_path}")


def stop_group(pid: int) -> None:
    """Stop a server this script started (its own process group, by pid)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.waitpid(pid, os.WNOHANG)
            os.killpg(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def load(port: int, path: str, body: bytes, total: int, clients: int) -> tuple[float, list[float]]:
    """``total`` POSTs spread over ``clients`` keep-alive connections; (wall seconds, latencies in ms)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        barrier.wait()
        for _ in range(n):
            start = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            mine.append((time.perf_counter() - start) * 1000)
            if resp.status != 200:
                with lock:
                    errors.append(str(resp.status))
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} requests to port {port} failed (HTTP {errors[0]})")
    return wall, latencies


def figures(runs: list[tuple[float, list[float]]], clients: int) -> dict:
    """Rounds pooled: throughput over all requests, percentiles over all latencies."""
    seconds = sum(wall for wall, _ in runs)
    latencies = [ms for _, lat in runs for ms in lat]
    return {"requests": len(latencies), "clients": clients, "rounds": len(runs), "seconds": round(seconds, 3),
            "rps": round(len(latencies) / seconds, 1), "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per measurement (default 500)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate the servers this many times per level, results pooled (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-cold-build", action="store_true", help="skip the cold serving-env build")
    args = parser.parse_args()

    envs = os.environ.get("MLOPS_SERVING_ENVS_DIR") or str(REPO / "build" / "serving-envs")
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        (root / "mlops.yaml").write_text(f"project: bench-model\ndeploy:\n  serving_envs_dir: {envs}\n")
        cfg = load_config(root / "mlops.yaml", environ={})
        champion = make_model(root)
        example = load_input_example(champion["artifact_uri"])
        build = {} if args.no_cold_build else cold_build(cfg, champion["artifact_uri"])
        mlserver = serve_local(cfg, champion, port=free_port(), metrics_port=free_port())
        mlflow_port = free_port()
        mlflow_proc = None
        try:
            mlflow_proc = start_mlflow_serve(champion["artifact_uri"], mlflow_port, root / "mlflow-serve.log")
            targets = {
                "mlserver": (int(mlserver["url"].rsplit(":", 1)[1]), f"/v2/models/{mlserver['model_name']}/infer",
                             json.dumps(v2_request(example)).encode()),
                "mlflow": (mlflow_port, "/invocations", json.dumps({"dataframe_split": example}).encode()),
            }
            for port, path, body in targets.values():
                load(port, path, body, args.warmup, 1)
            results: dict[str, dict[int, dict]] = {name: {} for name in targets}
            for clients in (1, 8):
                runs: dict[str, list] = {name: [] for name in targets}
                for _ in range(args.rounds):  # alternate, so load from elsewhere hits both alike
                    for name, (port, path, body) in targets.items():
                        runs[name].append(load(port, path, body, args.requests, clients))
                for name in targets:
                    results[name][clients] = figures(runs[name], clients)
        finally:
            if mlflow_proc:
                stop_group(mlflow_proc.pid)
            stop_local(cfg)

    ratios = {c: round(results["mlserver"][c]["rps"] / results["mlflow"][c]["rps"], 2) for c in (1, 8)}
    if args.json:
        print(json.dumps({"results": results, "ratio_rps_mlserver_over_mlflow": ratios, "env_build_s": build},
                         indent=2))
        return
    if build:
        print(f"serving environment build: {build['cold']} s cold (empty uv cache; target <= 20 s), "
              f"{build['warm_uv_cache']} s with the uv cache warm")
    print(f"serving a tiny sklearn model: {args.rounds} x {args.requests} requests per row, 1 worker each, "
          f"{os.cpu_count()} cores shared with the client")
    print(f"{'server':<10} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for clients in (1, 8):
        for name in targets:
            r = results[name][clients]
            print(f"{name:<10} {clients:>7} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    for clients in (1, 8):
        print(f"ratio MLServer/mlflow throughput, {clients} client(s): {ratios[clients]:.2f}")


if __name__ == "__main__":
    main()
