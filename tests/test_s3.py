"""S3 for data and models, against moto's S3 server and a real `mlflow server` started here.

- `mlops data push/pull` through DVC's S3 remote (endpoint from `data.endpoint_url` or
  `AWS_ENDPOINT_URL`), objects checked in the bucket, credentials from the environment or an AWS
  credentials file and never written to `.dvc/config*`;
- `mlops model train/register` through an MLflow server proxying its artifacts to
  `s3://mlflow/mlflow`, then `mlops deploy render`'s `modelUri` is the real S3 path of the model.

A canary secret in AWS_SECRET_ACCESS_KEY must not show up in any output, file or git history.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests import _model_project as mp
from tests.conftest import BIN, dvc, git

CANARY = "CANARY-aws-s3cr3t-7f3a9c"
DATA_BUCKET, MLFLOW_BUCKET = "mlops-data", "mlflow"
ARTIFACTS = f"s3://{MLFLOW_BUCKET}/mlflow"
# Credentials for moto (it accepts any) and no fallback to this machine's ~/.aws or an instance role.
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": CANARY, "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config",
       "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list, log: Path, env: dict) -> subprocess.Popen:
    with open(log, "wb") as out:  # own process group: stopped with everything it spawned
        return subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url}: server exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{url} not ready in {timeout} s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 on 127.0.0.1 with the two buckets."""
    import boto3

    tmp = tmp_path_factory.mktemp("moto")
    endpoint = f"http://127.0.0.1:{free_port()}"
    log = tmp / "moto.log"
    proc = start([BIN / "moto_server", "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]], log,
                 {**os.environ, **AWS})
    try:
        wait_http(f"{endpoint}/moto-api/", proc, log, 30)
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                              aws_secret_access_key=CANARY, region_name="us-east-1")
        for bucket in (DATA_BUCKET, MLFLOW_BUCKET):
            client.create_bucket(Bucket=bucket)
        yield SimpleNamespace(endpoint=endpoint, client=client, log=log)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def mlflow_server(s3, tmp_path_factory):
    """`mlflow server` (SQLite, artifacts proxied to S3, no job runner, one worker); only it holds S3 credentials."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    url = f"http://127.0.0.1:{free_port()}"
    log = tmp / "mlflow.log"
    env = {**os.environ, **AWS, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_S3_ENDPOINT_URL": s3.endpoint}
    proc = start([BIN / "mlflow", "server", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1],
                  "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination", ARTIFACTS,
                  "--workers", "1"], log, env)
    try:
        wait_http(f"{url}/health", proc, log, 120)
        yield SimpleNamespace(url=url, log=log)
    finally:
        stop(proc)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def tree_md5s(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): md5(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_no_canary(*texts: str, files: list[Path] = (), repo: Path | None = None) -> None:
    for text in texts:
        assert CANARY not in text
    for path in files:
        assert CANARY not in path.read_text(errors="replace"), path
    if repo is not None:
        assert CANARY not in git(repo, "log", "-p", "--all")


def test_data_push_pull_round_trip_on_s3(mlops, project, s3, tmp_path):
    config = project / "mlops.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["profiles"]["s3"] = {"data": {"remote_url": f"s3://{DATA_BUCKET}/taxi-fare", "endpoint_url": s3.endpoint}}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(project, "commit", "-qam", "s3 profile")
    original = tree_md5s(project / "data" / "trips")

    r = mlops("--profile", "s3", "data", "push", "--json", cwd=project, env=AWS)
    assert r.code == 0, r
    assert r.json()["pushed_files"] == len(original) + 1 and r.json()["url"] == f"s3://{DATA_BUCKET}/taxi-fare"
    again = mlops("--profile", "s3", "data", "push", "--json", cwd=project, env=AWS)
    assert again.code == 0 and again.json()["changed"] is False, again

    # the objects really are in the bucket, content-addressed by their md5 (DVC 3 layout)
    listed = s3.client.list_objects_v2(Bucket=DATA_BUCKET, Prefix="taxi-fare/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    dir_md5 = yaml.safe_load((project / "data" / "trips.dvc").read_text())["outs"][0]["md5"]
    assert f"taxi-fare/files/md5/{dir_md5[:2]}/{dir_md5[2:]}" in keys
    for digest in original.values():
        key = f"taxi-fare/files/md5/{digest[:2]}/{digest[2:]}"
        assert key in keys
        body = s3.client.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()
        assert hashlib.md5(body).hexdigest() == digest

    # only the location is written, to the git-ignored config.local; no credential anywhere
    local = (project / ".dvc" / "config.local").read_text()
    assert f"s3://{DATA_BUCKET}/taxi-fare" in local and s3.endpoint in local
    assert "testing" not in local and "access_key" not in local and "secret" not in local
    assert s3.endpoint not in (project / ".dvc" / "config").read_text()
    assert git(project, "status", "--porcelain").strip() == ""

    # another machine: a fresh clone, endpoint and remote from the environment, keys from a credentials file
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    creds = tmp_path / "aws-credentials"
    creds.write_text(f"[default]\naws_access_key_id = testing\naws_secret_access_key = {CANARY}\n")
    env = {**AWS, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": str(creds),
           "MLOPS_DVC_REMOTE_URL": f"s3://{DATA_BUCKET}/taxi-fare", "AWS_ENDPOINT_URL": s3.endpoint}
    assert not (clone / "data" / "trips").exists()
    pulled = mlops("data", "pull", "--json", cwd=clone, env=env)
    assert pulled.code == 0 and pulled.json()["fetched_files"] == len(original) + 1, pulled
    assert tree_md5s(clone / "data" / "trips") == original
    assert "secret" not in (clone / ".dvc" / "config.local").read_text()

    assert_no_canary(r.out, r.err, again.out, again.err, pulled.out, pulled.err,
                     files=[*project.glob(".dvc/config*"), *clone.glob(".dvc/config*")], repo=project)


def test_s3_failures_are_clear_and_keep_secrets(mlops, project, s3):
    remote = {"MLOPS_DVC_REMOTE_URL": f"s3://{DATA_BUCKET}/failures"}
    # endpoint down: the operation failed (exit 1), the message names the endpoint
    down = f"http://127.0.0.1:{free_port()}"
    r = mlops("data", "push", cwd=project, env={**AWS, **remote, "AWS_ENDPOINT_URL": down})
    assert r.code == 1 and "storage endpoint unreachable" in r.err and down in r.err, r
    # no credentials anywhere: bad input (exit 2) that says where they are expected
    nokeys = {**AWS, **remote, "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    r = mlops("data", "push", cwd=project, env=nokeys)
    assert r.code == 2 and "no S3 credentials" in r.err and "AWS_ACCESS_KEY_ID" in r.err, r
    # a missing bucket
    r = mlops("data", "push", cwd=project, env={**AWS, "MLOPS_DVC_REMOTE_URL": "s3://no-such-bucket/x",
                                                "AWS_ENDPOINT_URL": s3.endpoint})
    assert r.code == 1 and "does not exist" in r.err, r
    # credentials in a URL are refused before anything is written, without echoing them
    r = mlops("data", "push", cwd=project, env={**AWS, "MLOPS_DVC_REMOTE_URL": f"s3://testing:{CANARY}@b/x"})
    assert r.code == 2 and "$MLOPS_DVC_REMOTE_URL" in r.err and "must not carry credentials" in r.err, r
    assert_no_canary(r.out, r.err)
    # a secret someone put in the git-tracked .dvc/config is refused (named, not shown)
    dvc(project, "remote", "add", "storage", f"s3://{DATA_BUCKET}/x")
    dvc(project, "remote", "modify", "storage", "secret_access_key", CANARY)
    r = mlops("data", "push", cwd=project, env={**AWS, "AWS_ENDPOINT_URL": s3.endpoint})
    assert r.code == 2 and ".dvc/config: remote 'storage' has secret_access_key" in r.err, r
    assert_no_canary(r.out, r.err)


def test_model_through_mlflow_server_lands_in_s3(s3, mlflow_server, tmp_path):
    profile = {"mlflow": {"tracking_uri": mlflow_server.url, "artifacts_destination": ARTIFACTS}}
    config = mp.make_project(tmp_path / "taxi-fare", rows=300, extra_config={"profiles": {"cluster": profile}})
    mp.write_status(mp.load(config), mp.CHEAP)
    cluster = ("--profile", "cluster")

    train = mp.run_cli(config, *cluster, "model", "train", "--json", env=AWS)
    assert train.returncode == 0, train.stderr[-2000:]
    assert json.loads(train.stdout)["model_id"].startswith("m-")  # stdout stays one JSON document
    register = mp.run_cli(config, *cluster, "model", "register", "--json", env=AWS)
    assert register.returncode == 0, register.stderr[-2000:]
    assert json.loads(register.stdout)["promoted"] is True
    render = mp.run_cli(config, *cluster, "deploy", "render", "--json", env=AWS)
    assert render.returncode == 0, render.stderr[-2000:]

    manifest = Path(next(f["path"] for f in yaml.safe_load(render.stdout)["files"]
                         if f["gitops_path"].endswith("seldondeployment.yaml")))
    sdep = yaml.safe_load(manifest.read_text())
    model_uri = sdep["spec"]["predictors"][0]["graph"]["modelUri"]
    served_from = sdep["metadata"]["annotations"]["mlops.io/artifact-uri"]
    assert served_from.startswith("mlflow-artifacts:/")  # what the proxying server reports ...
    assert model_uri == f"{ARTIFACTS}/{served_from[len('mlflow-artifacts:/'):]}"  # ... and where it really is
    assert model_uri.startswith(f"{ARTIFACTS}/") and "/models/m-" in model_uri

    # the MLmodel is at that path in the bucket (the server wrote it there, the client holds no S3 role)
    key = model_uri[len(f"s3://{MLFLOW_BUCKET}/"):].rstrip("/")
    head = s3.client.head_object(Bucket=MLFLOW_BUCKET, Key=f"{key}/MLmodel")
    assert head["ContentLength"] > 0
    mlmodel = yaml.safe_load(s3.client.get_object(Bucket=MLFLOW_BUCKET, Key=f"{key}/MLmodel")["Body"].read())
    assert "sklearn" in mlmodel["flavors"]

    assert_no_canary(train.stdout, train.stderr, register.stdout, register.stderr, render.stdout, render.stderr,
                     files=[*manifest.parent.parent.rglob("*.yaml"), mlflow_server.log, s3.log], repo=config.parent)


def test_unreachable_tracking_server_is_exit_1(tmp_path):
    config = mp.make_project(tmp_path / "p", rows=50)
    down = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    r = mp.run_cli(config, "model", "champion", env={"MLFLOW_TRACKING_URI": down})
    assert r.returncode == 1 and f"MLflow tracking server {down} is unreachable" in r.stderr, r.stderr
    assert time.monotonic() - started < 30  # not MLflow's minutes of retries


@pytest.fixture
def s3_with_iam(tmp_path):
    """moto's S3 that checks credentials as AWS does (IAM auth on after the 6 set-up calls): user ci with
    an access key allowed s3:*, user nobody with a key and no policy, one bucket."""
    import boto3

    endpoint = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "moto-iam.log"
    proc = start([BIN / "moto_server", "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]], log,
                 {**os.environ, **AWS, "INITIAL_NO_AUTH_ACTION_COUNT": "6"})
    try:
        wait_http(f"{endpoint}/moto-api/", proc, log, 30)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup-only")
        for user in ("ci", "nobody"):
            iam.create_user(UserName=user)
        key = iam.create_access_key(UserName="ci")["AccessKey"]
        denied = iam.create_access_key(UserName="nobody")["AccessKey"]
        iam.put_user_policy(UserName="ci", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                     aws_secret_access_key=key["SecretAccessKey"]).create_bucket(Bucket=DATA_BUCKET)
        yield SimpleNamespace(endpoint=endpoint, key_id=key["AccessKeyId"], secret=key["SecretAccessKey"],
                              denied_id=denied["AccessKeyId"], denied_secret=denied["SecretAccessKey"])
    finally:
        stop(proc)


def test_s3_refusing_the_credentials_is_a_clear_failure_without_the_secret(mlops, project, s3_with_iam):
    """S3's three refusals of credentials (403 SignatureDoesNotMatch, InvalidAccessKeyId, AccessDenied):
    exit 1, one line naming the bucket, S3's reason and the variable to check, never the secret."""
    s3 = s3_with_iam
    remote = {**AWS, "MLOPS_DVC_REMOTE_URL": f"s3://{DATA_BUCKET}/auth", "AWS_ENDPOINT_URL": s3.endpoint}
    cases = [
        ({"AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": CANARY}, "SignatureDoesNotMatch",
         "check AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000"}, "InvalidAccessKeyId", "check AWS_ACCESS_KEY_ID"),
        ({"AWS_ACCESS_KEY_ID": s3.denied_id, "AWS_SECRET_ACCESS_KEY": s3.denied_secret}, "AccessDenied",
         "not allowed on this bucket"),
    ]
    for keys, code, hint in cases:
        r = mlops("data", "push", cwd=project, env={**remote, **keys})
        assert r.code == 1, r
        (line,) = [ln for ln in r.err.splitlines() if ln.startswith("mlops: error:")]
        assert f"s3://{DATA_BUCKET}/auth" in line and f": {code} (" in line and hint in line, line
        assert_no_canary(r.out, r.err, files=list(project.glob(".dvc/config*")))
        assert s3.denied_secret not in r.out + r.err
    r = mlops("data", "push", "--json", cwd=project,
              env={**remote, "AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": s3.secret})
    assert r.code == 0 and r.json()["pushed_files"] > 0, r
