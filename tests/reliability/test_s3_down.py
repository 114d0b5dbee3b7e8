"""The S3 endpoint goes down while a model is being logged through an MLflow server.

What must survive: `mlops model train` fails with exit 1 and one line; the run it started is not
complete (it never gets the model-id tag `register` looks for), so `mlops model register` finds no
run to register and the registry holds no version pointing at missing artifacts. Slow: its own
moto and MLflow servers, stopped by the test.
"""

from __future__ import annotations

import pytest

from tests import _model_project as mp
from tests.test_s3 import ARTIFACTS, AWS, MLFLOW_BUCKET, free_port, start, stop, wait_http


@pytest.mark.slow
def test_s3_down_during_model_logging(tmp_path):
    import os

    import boto3
    from mlflow import MlflowClient

    from tests.conftest import BIN

    endpoint = f"http://127.0.0.1:{free_port()}"
    moto = start([BIN / "moto_server", "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]], tmp_path / "moto.log",
                 {**os.environ, **AWS})
    url = f"http://127.0.0.1:{free_port()}"
    server = None
    try:
        wait_http(f"{endpoint}/moto-api/", moto, tmp_path / "moto.log", 30)
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=MLFLOW_BUCKET)
        env = {**os.environ, **AWS, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_S3_ENDPOINT_URL": endpoint}
        server = start([BIN / "mlflow", "server", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1],
                        "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--artifacts-destination",
                        ARTIFACTS, "--workers", "1"], tmp_path / "mlflow.log", env)
        wait_http(f"{url}/health", server, tmp_path / "mlflow.log", 120)
        stop(moto)  # the object store is gone; the tracking server is not

        profile = {"mlflow": {"tracking_uri": url, "artifacts_destination": ARTIFACTS}}
        config = mp.make_project(tmp_path / "p", rows=300, extra_config={"profiles": {"cluster": profile}})
        mp.write_status(mp.load(config), mp.CHEAP)
        train = mp.run_cli(config, "--profile", "cluster", "model", "train", "--json", env=AWS)
        assert train.returncode == 1, train.stderr[-2000:]
        assert train.stderr.strip().splitlines()[-1].startswith("mlops: error:") and "Traceback" not in train.stderr

        register = mp.run_cli(config, "--profile", "cluster", "model", "register", "--json", env=AWS)
        assert register.returncode in (1, 2) and "Traceback" not in register.stderr
        client = MlflowClient(url)
        assert client.search_model_versions("name='taxi-fare'") == []
        runs = client.search_runs([client.get_experiment_by_name("taxi-fare").experiment_id])
        assert runs and all(r.info.status != "FINISHED" or "mlops.model_id" not in r.data.tags for r in runs)
        assert AWS["AWS_SECRET_ACCESS_KEY"] not in train.stdout + train.stderr + register.stderr
    finally:
        if server is not None:
            stop(server)
        stop(moto)
