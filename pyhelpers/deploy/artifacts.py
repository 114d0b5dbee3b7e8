"""Deploy only what exists: the champion's ``MLmodel`` must be at its artifact URI before a manifest is written.

A registry can name a version whose files were deleted (a cleaned bucket, a lost local store); a
manifest for it would deploy a model server that fails at start in the cluster, long after the
pipeline reported success. Where the check looks depends on the URI's scheme:

- a local path or ``file://``: the file system;
- ``s3://``: ``HeadObject`` of ``<prefix>/MLmodel`` with boto3 at ``mlflow.s3_endpoint_url`` (else
  botocore's own endpoint resolution: ``AWS_ENDPOINT_URL``, the region);
- anything else (``mlflow-artifacts:/`` through a tracking server, ``gs://``, ...): the MLflow
  client's artifact repository for that URI lists the folder.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pyhelpers.errors import OperationFailed

MLMODEL = "MLmodel"


def _missing(champion: dict, where: str) -> OperationFailed:
    return OperationFailed(
        f"champion {champion['name']} version {champion['version']}: no {MLMODEL} at {where} "
        "(its artifacts were deleted or never uploaded); nothing rendered or pushed"
    )


def verify_model_artifacts(cfg, champion: dict) -> dict:
    """Raise OperationFailed (exit 1) naming the URI when the champion's ``MLmodel`` is not there."""
    from pyhelpers.redaction import redact_url

    uri = str(champion["artifact_uri"])
    shown = redact_url(uri)
    scheme = urlsplit(uri).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter, not a scheme
        path = Path(unquote(urlsplit(uri).path) if scheme == "file" else uri)
        path = path if path.is_absolute() else cfg.root / path
        if not (path / MLMODEL).is_file():
            raise _missing(champion, str(path))
        return {"artifact_uri": shown, "checked": str(path / MLMODEL), "via": "file system"}
    if scheme == "s3":
        return _check_s3(cfg, champion, uri, shown)
    return _check_mlflow(cfg, champion, uri, shown)


def _check_s3(cfg, champion: dict, uri: str, shown: str) -> dict:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(uri)
    bucket, key = parts.netloc, f"{parts.path.strip('/')}/{MLMODEL}".lstrip("/")
    endpoint = cfg.mlflow.s3_endpoint_url or None
    client = boto3.client("s3", endpoint_url=endpoint,
                          config=BotoConfig(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2}))
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise _missing(champion, f"{shown} (s3://{bucket}/{key})") from None
        raise OperationFailed(f"cannot check the champion's artifacts at {shown}: S3 answered {code or exc} "
                              "(credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws)") from None
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, ...
        raise OperationFailed(f"cannot check the champion's artifacts at {shown}: {exc}") from None
    return {"artifact_uri": shown, "checked": f"s3://{bucket}/{key}", "via": f"S3 {endpoint or 'default endpoint'}"}


def _check_mlflow(cfg, champion: dict, uri: str, shown: str) -> dict:
    from pyhelpers.model import tracking

    tracking.connect(cfg)
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        names = {Path(f.path).name for f in mlflow.artifacts.list_artifacts(artifact_uri=uri,
                                                                             tracking_uri=cfg.tracking_uri)}
    except MlflowException as exc:
        raise tracking.mlflow_failure(f"cannot check the champion's artifacts at {shown}", exc) from None
    except Exception as exc:  # noqa: BLE001 - an artifact store's own client errors (HTTP, cloud SDKs)
        raise OperationFailed(f"cannot check the champion's artifacts at {shown}: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None
    if MLMODEL not in names:
        raise _missing(champion, shown)
    return {"artifact_uri": shown, "checked": f"{shown}/{MLMODEL}", "via": f"MLflow {cfg.tracking_uri}"}
