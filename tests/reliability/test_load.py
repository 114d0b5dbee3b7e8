"""Bounded load on the local model server (MLServer on 127.0.0.1): 8 concurrent clients for 30 s.

What must hold: no failed request, latency percentiles reported, the server's memory stable
(RSS after the load within 64 MiB of RSS after warm-up), and MLServer's own Prometheus counter
agreeing with the client-side count. Slow: run by `make test-all`.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from pyhelpers.deploy.serve import free_port, serve_local, stop_local
from pyhelpers.deploy.smoke import infer_success_count, load_input_example, percentile, v2_request
from tests.test_deploy_serve import registered  # noqa: F401 - the same tiny model and cached serving env

CLIENTS, SECONDS = 8, 30
MAX_REQUESTS_PER_CLIENT = 20_000  # a bound on the loop, whatever the speed


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def client_loop(port: int, path: str, body: bytes, deadline: float, out: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() >= deadline:
            break
        start = time.perf_counter()
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except OSError:
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        out["latencies" if ok else "errors"].append((time.perf_counter() - start) * 1000)
    conn.close()


@pytest.mark.slow
def test_eight_clients_for_thirty_seconds(registered):  # noqa: F811
    root, cfg, champion = registered
    served = serve_local(cfg, champion, port=free_port(), metrics_port=free_port())
    try:
        port = int(served["url"].rsplit(":", 1)[1])
        path = f"/v2/models/{served['model_name']}/infer"
        body = json.dumps(v2_request(load_input_example(served["model_dir"]))).encode()
        warm = {"latencies": [], "errors": []}
        client_loop(port, path, body, time.monotonic() + 3, warm)
        rss_before = rss_kib(served["pid"])
        count_before = infer_success_count(served["metrics_url"], served["model_name"])

        results = [{"latencies": [], "errors": []} for _ in range(CLIENTS)]
        deadline = time.monotonic() + SECONDS
        threads = [threading.Thread(target=client_loop, args=(port, path, body, deadline, r)) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join(SECONDS + 30)
        latencies = [x for r in results for x in r["latencies"]]
        errors = sum(len(r["errors"]) for r in results)
        count_after = infer_success_count(served["metrics_url"], served["model_name"])
        rss_after = rss_kib(served["pid"])

        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(f"\n{len(latencies)} requests in {SECONDS} s from {CLIENTS} clients: {len(latencies) / SECONDS:.0f} req/s, "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, errors {errors}, RSS {rss_before // 1024} -> {rss_after // 1024} MiB")
        assert errors == 0
        assert len(latencies) > CLIENTS * 10
        assert count_after - count_before == len(latencies)  # the server's own count agrees with ours
        assert rss_after - rss_before < 64 * 1024
    finally:
        stop_local(cfg)
