"""Connecting to MLflow: tracking URI, the project's MLflow experiment, quiet logs, lineage tags.

mlflow is imported inside the functions: ``import mlflow`` costs about 2.5 s.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyhelpers.errors import BadInput, OperationFailed

CHAMPION = "champion"

# Lineage tags of runs and model versions (docs/CONTRACTS.md).
DATA_VERSION = "mlops.data_version"
GIT_COMMIT = "mlops.git_commit"
EXPERIMENT = "mlops.experiment"
BEST_TRIAL = "mlops.best_trial"
OBJECTIVE_METRIC = "mlops.objective_metric"
OBJECTIVE_VALUE = "mlops.objective_value"
BUILD_URL = "mlops.build_url"
JOB_NAME = "mlops.job_name"
LINEAGE_TAGS = (DATA_VERSION, GIT_COMMIT, EXPERIMENT, BEST_TRIAL, OBJECTIVE_METRIC, OBJECTIVE_VALUE,
                BUILD_URL, JOB_NAME)
# Internal tags: not lineage, but what `train`/`register` need to find their own work again.
OBJECTIVE_TYPE = "mlops.objective_type"  # minimize | maximize
MODEL_ID = "mlops.model_id"  # the LoggedModel (m-…) the run produced
TRAIN_KEY = "mlops.train_key"  # hash of data version + parameters + git commit (idempotency)
# Registered-model tags
PREVIOUS_CHAMPION = "mlops.previous_champion"
CHAMPION_HISTORY = "mlops.champion_history"  # comma-separated versions, oldest first


def quiet_mlflow() -> None:
    """mlflow logs INFO lines (database migrations, experiment creation) to stderr; keep warnings."""
    import logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # With a tracking server, ending a run writes "View run … at: URL" to stdout, which would break
    # the one-JSON-document contract of --json (Jenkins readJSON); the run id is in our output.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    # MLflow's default (7 retries, backoff factor 2) turns a dead artifact store behind the server
    # into minutes of silence per request; a pipeline step should fail within about a minute.
    # Users who want more patience set these variables themselves.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def is_local_store(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "sqlite")


def connect(cfg):
    """An MlflowClient on ``cfg.tracking_uri`` (also set as the fluent API's tracking URI).

    Remote stores: a tracking server must answer ``/health`` (else exit 1 at once, not after
    MLflow's minutes of retries); ``mlflow.s3_endpoint_url`` reaches MLflow's S3 client as
    ``MLFLOW_S3_ENDPOINT_URL`` (used when artifacts go to S3 directly, not through the server).
    Credentials stay where MLflow and botocore read them: the environment and ~/.aws.
    """
    uri = cfg.tracking_uri
    if uri.startswith("sqlite:///"):
        # SQLAlchemy does not create the folder of the database file.
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    if urlparse(uri).scheme in ("http", "https"):
        check_server(uri)
    if cfg.mlflow.s3_endpoint_url:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = cfg.mlflow.s3_endpoint_url  # trainer subprocesses inherit it
    import mlflow
    from mlflow import MlflowClient

    quiet_mlflow()
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


HEALTH_RETRY_DELAYS = (1.0, 2.0)  # a restarting server gets a few seconds, a missing one fails fast


def check_server(uri: str, delays: tuple[float, ...] = HEALTH_RETRY_DELAYS) -> None:
    """Fail with one line when the tracking server does not answer; any HTTP answer counts as up."""
    import time
    import urllib.error
    import urllib.request

    from pyhelpers.redaction import redact_url

    url = redact_url(uri).replace("***@", "").rstrip("/") + "/health"  # user-info is no part of the probe
    for attempt in range(len(delays) + 1):
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except urllib.error.HTTPError:
            return  # it answered (e.g. 401 behind a proxy): MLflow's own calls report the rest
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if attempt == len(delays):
                raise OperationFailed(f"MLflow tracking server {redact_url(uri)} is unreachable "
                                      f"({reason}; mlflow.tracking_uri / MLFLOW_TRACKING_URI)") from None
            time.sleep(delays[attempt])


def ensure_experiment(client, cfg) -> str:
    """The id of the project's MLflow experiment, created on first use.

    With a local store the artifacts go under ``cfg.mlflow_artifact_root`` (not ./mlruns of
    whatever folder the command ran in); a tracking server chooses its own artifact location.
    """
    from mlflow.exceptions import MlflowException

    name = cfg.mlflow_experiment
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if is_local_store(cfg.tracking_uri):
            location = (Path(cfg.mlflow_artifact_root) / name).as_uri()
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:
            exp = client.get_experiment_by_name(name)  # created concurrently
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise BadInput(f"mlflow.experiment: MLflow experiment {name!r} is deleted; restore it or choose another name",
                       source=cfg.source)
    return exp.experiment_id


def local_path(uri: str) -> str:
    """``file:///x`` -> ``/x``; other URIs unchanged."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return uri


AUTH_REFUSALS = {
    401: "the MLflow tracking server did not accept the credentials (401): set MLFLOW_TRACKING_USERNAME and "
         "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN (`mlops config show` says which are set)",
    403: "the MLflow tracking server does not allow this user the operation (403): grant the user permission "
         "on the experiment or registered model, or use other credentials (MLFLOW_TRACKING_USERNAME)",
}
AUTH_ERROR_CODES = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}


def http_status(exc: Exception) -> int | None:
    """The HTTP status of a failed MLflow REST call, from its error code or its message
    ("API request to endpoint ... failed with error code 401 != 200")."""
    import re

    status = AUTH_ERROR_CODES.get(getattr(exc, "error_code", ""))
    found = re.search(r"failed with error code (\d{3}) != 200", str(exc))
    return status or (int(found.group(1)) if found else None)


def mlflow_failure(action: str, exc: Exception) -> OperationFailed:
    """One line for a failed MLflow call (never the full server response); a refused login says
    which variables to set."""
    refusal = AUTH_REFUSALS.get(http_status(exc))
    if refusal:
        return OperationFailed(f"{action}: {refusal}")
    text = " ".join(str(exc).split())
    return OperationFailed(f"{action}: {text[:300]}")
