"""The MLflow tracking server goes down between train and register.

What must survive: the trained run (it is on the server, finished and complete); `register`
fails with exit 1 and one line, leaving no version; once the server is back, rerunning the
line's steps reuses the run (no retraining) and registers exactly one version. Slow: two server
starts.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests._model_project import GOOD, load, make_project, run_cli, write_status
from tests.test_s3 import free_port, start, stop, wait_http

BIN_MLFLOW = os.path.join(os.path.dirname(sys.executable), "mlflow")


def server(tmp, port):
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = start([BIN_MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port),
                  "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                  "--artifacts-destination", str(tmp / "artifacts"), "--workers", "1"], tmp / "mlflow.log", env)
    wait_http(f"http://127.0.0.1:{port}/health", proc, tmp / "mlflow.log", 120)
    return proc


@pytest.mark.slow
def test_server_down_between_train_and_register(tmp_path):
    port = free_port()
    config = make_project(tmp_path / "p", extra_config={"mlflow": {"tracking_uri": f"http://127.0.0.1:{port}",
                                                                   "experiment": "taxi-fare",
                                                                   "registered_model": "taxi-fare"}})
    cfg = load(config)
    write_status(cfg, GOOD)
    (tmp_path / "srv").mkdir()
    proc = server(tmp_path / "srv", port)
    try:
        trained = run_cli(config, "model", "train", "--json")
        assert trained.returncode == 0, trained.stderr[-2000:]
        run_id = json.loads(trained.stdout)["run_id"]
    finally:
        stop(proc)

    down = run_cli(config, "model", "register", "--json")
    assert down.returncode == 1 and "unreachable" in down.stderr and len(down.stderr.strip().splitlines()) == 1

    proc = server(tmp_path / "srv", port)
    try:
        retrain = run_cli(config, "model", "train", "--json")  # the line's first step, rerun
        assert retrain.returncode == 0, retrain.stderr[-2000:]
        assert json.loads(retrain.stdout)["unchanged"] is True and json.loads(retrain.stdout)["run_id"] == run_id
        for _ in range(2):  # the rerun registers once; a second rerun is a no-op
            reg = run_cli(config, "model", "register", "--json")
            assert reg.returncode == 0, reg.stderr[-2000:]
            assert json.loads(reg.stdout)["candidate"]["version"] == "1"
        from mlflow import MlflowClient

        versions = MlflowClient(f"http://127.0.0.1:{port}").search_model_versions("name='taxi-fare'")
        assert [v.version for v in versions] == ["1"] and versions[0].run_id == run_id
    finally:
        stop(proc)
