"""mlops deploy serve --local / smoke / stop: a real MLServer on 127.0.0.1 serving a registered MLflow model.

The serving virtualenv (MLServer + the model's requirements, ~1 GB, ~80 s to build) is cached
across test runs in $MLOPS_SERVING_ENVS_DIR, default <repo>/build/serving-envs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from pyhelpers.config import load_config
from pyhelpers.deploy import serve as serve_mod
from pyhelpers.deploy.serve import (
    env_hash,
    free_port,
    read_server_state,
    requirement_lines,
    serve_local,
    serving_envs_dir,
    stop_local,
)
from pyhelpers.deploy.smoke import check_input_example, percentile, smoke_test, v2_request
from pyhelpers.errors import BadInput, OperationFailed

REPO = Path(__file__).resolve().parents[1]
ENVS_DIR = Path(os.environ.get("MLOPS_SERVING_ENVS_DIR") or REPO / "build" / "serving-envs")

# Logs a LinearRegression fitted on y = 2a - b + 1, registers it and sets the alias `champion`;
# prints the champion description (docs/CONTRACTS.md) as JSON.
MAKE_MODEL = textwrap.dedent("""
    import json, sys
    import mlflow, pandas as pd
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression
    root = sys.argv[1]
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    exp = mlflow.create_experiment("tiny", artifact_location=f"{root}/mlruns")
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [0.5, 1.0, 3.0, 2.0, 0.0], "n": [1, 2, 3, 4, 5]})
    y = 2 * X["a"] - X["b"] + 1
    model = LinearRegression().fit(X, y)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_metric("rmse", 0.0)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name="tiny-model",
                                        input_example=X.head(3))
    client = MlflowClient()
    version = str(info.registered_model_version)
    client.set_registered_model_alias("tiny-model", "champion", version)
    print(json.dumps({
        "name": "tiny-model", "version": version, "run_id": run.info.run_id,
        "model_uri": f"models:/tiny-model/{version}",
        "artifact_uri": client.get_model_version_download_uri("tiny-model", version),
        "data_version": "dv-test", "git_commit": "0" * 40, "experiment": "tiny", "best_trial": "tiny-0001",
        "objective_metric": "rmse", "objective_value": 0.0,
    }))
""")


def write_config(root: Path, extra: str = "", tracking_uri: str | None = None) -> Path:
    mlflow = f"mlflow:\n  tracking_uri: {tracking_uri}\n  registered_model: tiny-model\n" if tracking_uri else ""
    (root / "mlops.yaml").write_text(
        f"project: tiny-model\n{mlflow}deploy:\n  serving_envs_dir: {ENVS_DIR}\n{extra}"
    )
    return root / "mlops.yaml"


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-project")
    proc = subprocess.run([sys.executable, "-c", MAKE_MODEL, str(root)], capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    champion = json.loads(proc.stdout.strip().splitlines()[-1])
    write_config(root, tracking_uri=f"sqlite:///{root}/mlflow.db")
    (root / "champion.json").write_text(json.dumps(champion))
    cfg = load_config(root / "mlops.yaml", environ={})
    yield root, cfg, champion
    stop_local(cfg)  # never leave a server behind, whatever failed


def _pid_alive(pid: int) -> bool:
    return serve_mod._alive(pid)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- fast unit checks -------------------------------------------------------------------------------
def test_v2_request_has_one_typed_input_per_column():
    req = v2_request({"columns": ["a", "n", "flag", "zone"], "data": [[1.5, 2, True, "x"], [2, 3, False, "y"]]})
    assert req["parameters"] == {"content_type": "pd"}
    assert req["inputs"] == [
        {"name": "a", "shape": [2], "datatype": "FP64", "data": [1.5, 2.0]},
        {"name": "n", "shape": [2], "datatype": "INT64", "data": [2, 3]},
        {"name": "flag", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        {"name": "zone", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]},
    ]


def test_input_example_shapes_are_checked():
    assert check_input_example({"dataframe_split": {"columns": ["a"], "data": [[1]]}}) == {"columns": ["a"],
                                                                                          "data": [[1]]}
    with pytest.raises(BadInput, match="split orient"):
        check_input_example({"a": [1, 2]})
    with pytest.raises(BadInput, match="row 1"):
        check_input_example({"columns": ["a", "b"], "data": [[1, 2], [3]]})


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile([3.0], 99) == 3.0


def test_env_hash_follows_requirements_not_their_order():
    a = requirement_lines("mlflow==3.17.2\n# comment\nnumpy==2.4.6\n\n")
    b = requirement_lines("numpy==2.4.6\nmlflow==3.17.2\n")
    pins = serve_mod.serving_pins("1.7.1")
    assert a == b == ["mlflow==3.17.2", "numpy==2.4.6"]
    assert env_hash(a, pins) == env_hash(b, pins)
    assert env_hash(a, pins) != env_hash(["mlflow==3.17.2", "numpy==2.4.7"], pins)
    assert env_hash(a, pins) != env_hash(a, serve_mod.serving_pins("1.7.0"))


def test_serving_envs_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_SERVING_ENVS_DIR", raising=False)
    (tmp_path / "mlops.yaml").write_text("project: p\n")
    cfg = load_config(tmp_path / "mlops.yaml", environ={})
    assert serving_envs_dir(cfg) == tmp_path / ".mlops" / "serving-envs"
    (tmp_path / "mlops.yaml").write_text("project: p\ndeploy:\n  serving_envs_dir: envs\n")
    cfg = load_config(tmp_path / "mlops.yaml", environ={})
    assert serving_envs_dir(cfg) == tmp_path / "envs"
    monkeypatch.setenv("MLOPS_SERVING_ENVS_DIR", str(tmp_path / "shared"))
    assert serving_envs_dir(cfg) == tmp_path / "shared"


def test_missing_model_fails_before_building_anything(tmp_path):
    write_config(tmp_path)
    cfg = load_config(tmp_path / "mlops.yaml", environ={})
    champion = {"name": "m", "version": "1", "artifact_uri": str(tmp_path / "nowhere")}
    with pytest.raises(OperationFailed, match="MLmodel missing"):
        serve_local(cfg, champion, port=free_port(), metrics_port=free_port())


def test_busy_port_is_reported(tmp_path, registered):
    _, _, champion = registered
    write_config(tmp_path)
    cfg = load_config(tmp_path / "mlops.yaml", environ={})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # checked after the environment build, naming who holds the port and the setting to change
        with pytest.raises(OperationFailed, match=f"serving port {port} on 127.0.0.1 is held by pid {os.getpid()} "
                                                  r"\(.*\); choose another with deploy.serve_port in mlops.yaml or "
                                                  "--port"):
            serve_local(cfg, champion, port=port, metrics_port=free_port())


# -- the real server -----------------------------------------------------------------------------------
def test_serve_smoke_metrics_and_stop(registered):
    root, cfg, champion = registered
    port, metrics_port = free_port(), free_port()
    info = serve_local(cfg, champion, port=port, metrics_port=metrics_port)
    try:
        assert info["changed"] and info["url"] == f"http://127.0.0.1:{port}"
        assert info["model_name"] == "tiny-model" and info["version"] == champion["version"]
        assert info["metrics_url"] == f"http://127.0.0.1:{metrics_port}/metrics"
        assert Path(info["env"]).parent == ENVS_DIR
        state = json.loads((root / ".mlops" / "serving" / "server.json").read_text())
        assert state["pid"] == info["pid"] and _pid_alive(info["pid"])
        settings = json.loads((root / ".mlops" / "serving" / "settings.json").read_text())
        assert settings["host"] == "127.0.0.1" and settings["parallel_workers"] == 0

        again = serve_local(cfg, champion, port=port, metrics_port=metrics_port)
        assert again["changed"] is False and again["pid"] == info["pid"]

        from pyhelpers.deploy.smoke import load_input_example

        example = load_input_example(info["model_dir"])
        assert example["columns"] == ["a", "b", "n"] and len(example["data"]) == 3
        result = smoke_test(info["url"], info["model_name"], example, requests=10, metrics_url=info["metrics_url"])
        assert result["ok"] and result["rows"] == 3 and result["model_version"] == champion["version"]
        assert result["outputs"][0]["shape"][0] == 3
        a, b, _ = example["data"][0]
        assert result["prediction"][0] == pytest.approx(2 * a - b + 1, abs=1e-6)
        assert result["metrics"]["infer_success_delta"] >= 10
        assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]

        with urllib.request.urlopen(info["metrics_url"], timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'model_infer_request_success_total{model="tiny-model"' in metrics
        assert "rest_server_request_duration_seconds" in metrics

        # an input the model cannot take makes the smoke test fail (exit 1 in the CLI)
        wrong = {"columns": ["a", "zzz", "n"], "data": [[1.0, 2.0, 3]]}
        with pytest.raises(OperationFailed, match="HTTP"):
            smoke_test(info["url"], info["model_name"], wrong, requests=1)
        with pytest.raises(OperationFailed, match="p99 latency"):
            smoke_test(info["url"], info["model_name"], example, requests=3, max_latency_ms=0.001)
    finally:
        stopped = stop_local(cfg)
    assert stopped["stopped"] and stopped["pid"] == info["pid"]
    assert not _pid_alive(info["pid"]) and not _port_open(port) and not _port_open(metrics_port)
    assert read_server_state(cfg) is None
    assert stop_local(cfg)["stopped"] is False


def test_readiness_timeout_is_an_operation_failure_and_leaves_nothing_running(tmp_path, registered):
    _, _, champion = registered
    write_config(tmp_path, "  ready_timeout_seconds: 1\n")
    cfg = load_config(tmp_path / "mlops.yaml", environ={})
    port = free_port()
    with pytest.raises(OperationFailed, match=r"not ready on http://127.0.0.1:\d+ \(deploy.serve_port\) within 1 s"):
        serve_local(cfg, champion, port=port, metrics_port=free_port())
    assert read_server_state(cfg) is None
    time.sleep(0.2)
    assert not _port_open(port)


class ForeignV2Server:
    """Another program on our port that answers 200 on every /v2 path, even naming our model and
    version in its metadata (the false success of issue 11: readiness by status code alone)."""

    def __init__(self, port: int, name: str, version: str):
        import http.server
        import threading

        body = json.dumps({"name": name, "versions": [version], "model_name": name, "model_version": version,
                           "outputs": [{"name": "o", "shape": [3, 1], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]})

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_foreign_server_taking_the_port_after_the_check_is_not_taken_for_ours(registered, monkeypatch):
    """The port is free when checked, then another server takes it before MLServer binds: our
    MLServer dies with EADDRINUSE, and readiness must not accept the other server's answers."""
    root, cfg, champion = registered
    port = free_port()
    foreign = ForeignV2Server(port, "tiny-model", champion["version"])
    monkeypatch.setattr(serve_mod, "_check_ports", lambda ports: None)  # the check ran before it bound
    try:
        with pytest.raises(OperationFailed) as failed:
            serve_local(cfg, champion, port=port, metrics_port=free_port())
    finally:
        foreign.close()
    message = str(failed.value)
    assert f"for port {port} exited with code" in message, message
    assert f"held by pid {os.getpid()}" in message and "deploy.serve_port" in message, message
    assert read_server_state(cfg) is None


def test_port_probe_ignores_time_wait(registered):
    """After a server stops, its connections linger in TIME_WAIT; the probe must still see a free port."""
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    assert serve_mod._port_free(port)
    assert serve_mod.port_holder(port) is None


def test_port_holder_names_the_listening_process():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not serve_mod._port_free(port)
        assert serve_mod.listening_pids(port) == {os.getpid()}
        assert serve_mod.port_holder(port).startswith(f"pid {os.getpid()} (")


def test_cli_serve_smoke_stop(registered, mlops):
    root, cfg, _ = registered
    port, metrics_port = free_port(), free_port()
    assert mlops("deploy", "serve", "--champion", "champion.json", cwd=root).code == 2  # --local is required
    served = mlops("deploy", "serve", "--local", "--champion", "champion.json", "--port", str(port),
                   "--metrics-port", str(metrics_port), "--json", cwd=root)
    try:
        assert served.code == 0, served
        info = served.json()
        assert info["url"] == f"http://127.0.0.1:{port}" and _pid_alive(info["pid"])
        smoke = mlops("deploy", "smoke", "--requests", "5", "--json", cwd=root)
        assert smoke.code == 0, smoke
        assert smoke.json()["ok"] and smoke.json()["metrics"]["infer_success_delta"] >= 5
        bad = tmp_path_example(root)
        failed = mlops("deploy", "smoke", "--input-example", str(bad), "--requests", "1", cwd=root)
        assert failed.code == 1 and failed.err.splitlines()[-1].startswith("mlops: error: smoke: POST"), failed
    finally:
        stopped = mlops("deploy", "stop", "--json", cwd=root)
    assert stopped.code == 0 and stopped.json()["stopped"] and not _pid_alive(info["pid"])
    nothing = mlops("deploy", "smoke", cwd=root)
    assert nothing.code == 1 and "no local server is running" in nothing.err


def tmp_path_example(root: Path) -> Path:
    path = root / "bad-example.json"
    path.write_text(json.dumps({"columns": ["nope"], "data": [[1.0]]}))
    return path


def test_render_without_champion_file_uses_the_registry(registered, mlops):
    """`get_champion` (the model side) and the champion built here describe the same version."""
    root, _, champion = registered
    from_registry = mlops("deploy", "render", "--json", "--out", "from-registry", cwd=root)
    from_file = mlops("deploy", "render", "--champion", "champion.json", "--json", "--out", "from-file", cwd=root)
    assert from_registry.code == 0, from_registry
    assert from_file.code == 0, from_file
    seldon = "apps/tiny-model/seldondeployment.yaml"
    text = (root / "from-registry" / seldon).read_text()
    assert f"modelUri: {Path(champion['artifact_uri']).as_uri()}" in text
    assert f"mlops.io/model-version: '{champion['version']}'" in text


def test_params_file_passes_options_like_jenkins(registered, mlops):
    root, _, _ = registered
    (root / "params.json").write_text(json.dumps({"champion": "champion.json", "out": "via-params"}))
    run = mlops("--params-file", "params.json", "deploy", "render", "--json", cwd=root)
    assert run.code == 0, run
    assert (root / "via-params" / "argocd" / "tiny-model.yaml").is_file()
