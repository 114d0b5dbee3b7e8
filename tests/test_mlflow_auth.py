"""MLflow's own basic-auth server (`mlflow server --app-name basic-auth`, the `mlflow[auth]` extra):
a refused login and a refused permission are one line that says which variables to set, and the
password never shows; the right credentials train and register."""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from types import SimpleNamespace

import pytest

from tests import _model_project as mp
from tests.conftest import BIN
from tests.test_s3 import free_port, start, stop, wait_http

ADMIN_PASSWORD = "CANARY-admin-pw-3f9a1c"
READER_PASSWORD = "CANARY-reader-pw-77c2e"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """The auth app on SQLite with an admin and a user `reader` who may only read (the default permission)."""
    tmp = tmp_path_factory.mktemp("mlflow-auth")
    (tmp / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    url = f"http://127.0.0.1:{free_port()}"
    log = tmp / "mlflow.log"
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(tmp / "auth.ini"), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-csrf-key", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = start([BIN / "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
                  "--port", url.rsplit(":", 1)[1], "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                  "--default-artifact-root", str(tmp / "artifacts"), "--workers", "1"], log, env)
    try:
        wait_http(f"{url}/health", proc, log, 120)
        basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        created = urllib.request.Request(f"{url}/api/2.0/mlflow/users/create", method="POST",
                                         data=json.dumps({"username": "reader", "password": READER_PASSWORD}).encode(),
                                         headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"})
        with urllib.request.urlopen(created, timeout=30) as resp:
            assert resp.status == 200
        yield SimpleNamespace(url=url, log=log)
    finally:
        stop(proc)


def one_error_line(r) -> str:
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("mlops: error:")]
    assert "Traceback" not in r.stderr
    return line


def test_refused_login_and_permission_name_the_variables_and_never_the_password(auth_server, tmp_path):
    profile = {"mlflow": {"tracking_uri": auth_server.url}}
    config = mp.make_project(tmp_path / "taxi-fare", rows=300, extra_config={"profiles": {"server": profile}})
    mp.write_status(mp.load(config), mp.CHEAP)
    server = ("--profile", "server")
    wrong = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD + "-wrong"}
    reader = {"MLFLOW_TRACKING_USERNAME": "reader", "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}
    admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}

    outputs = []
    for args in (("model", "champion"), ("model", "train")):
        r = mp.run_cli(config, *server, *args, env=wrong)
        outputs.append(r.stdout + r.stderr)
        assert r.returncode == 1, r.stderr[-2000:]
        line = one_error_line(r)
        assert "did not accept the credentials (401)" in line and "MLFLOW_TRACKING_PASSWORD" in line, line

    trained = mp.run_cli(config, *server, "model", "train", "--json", env=admin)
    assert trained.returncode == 0, trained.stderr[-2000:]
    registered = mp.run_cli(config, *server, "model", "register", "--run-id", json.loads(trained.stdout)["run_id"],
                            "--json", env=admin)
    assert registered.returncode == 0 and json.loads(registered.stdout)["promoted"] is True, registered.stderr[-2000:]
    # a better model, registered by a user who may read the admin's registered model but not change it
    mp.write_status(mp.load(config), mp.GOOD, data_version="dv-0002")
    better = mp.run_cli(config, *server, "model", "train", "--json", env=admin)
    assert better.returncode == 0, better.stderr[-2000:]
    refused = mp.run_cli(config, *server, "model", "register", "--run-id", json.loads(better.stdout)["run_id"],
                         env=reader)
    outputs.append(refused.stdout + refused.stderr)
    assert refused.returncode == 1, refused.stdout + refused.stderr[-2000:]
    assert "does not allow this user the operation (403)" in one_error_line(refused)
    champion = mp.run_cli(config, *server, "model", "champion", "--json", env=reader)
    assert json.loads(champion.stdout)["champion"]["version"] == "1", champion  # reading is allowed; nothing moved

    for text in outputs + [r.stdout + r.stderr for r in (trained, registered, better, champion)]:
        assert ADMIN_PASSWORD not in text and READER_PASSWORD not in text
