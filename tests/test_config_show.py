"""`mlops config show`: per component, the endpoint it will use and where credentials come from (never values)."""

from __future__ import annotations

import pytest

CANARY = "CANARY-cfg-s3cr3t-41b2"
CONFIG = """\
project: demo
notify:
  slack_channel: "#ml"
github:
  repo: example-org/demo
profiles:
  cluster:
    data:
      remote_url: s3://team-data/demo
      endpoint_url: http://minio.example:9000
    experiment:
      engine: katib
      namespace: mlops
    mlflow:
      tracking_uri: https://mlflow.example
      artifacts_destination: s3://team-mlflow/artifacts
    gitops:
      repo: https://github.com/example-org/gitops.git
"""
KUBECONFIG = f"""\
apiVersion: v1
kind: Config
current-context: ci
contexts: [{{name: ci, context: {{cluster: prod, user: jenkins}}}}]
clusters: [{{name: prod, cluster: {{server: "https://k8s.example:6443"}}}}]
users: [{{name: jenkins, user: {{token: {CANARY}}}}}]
"""
# Every credential the components read, set to the canary; nothing of this machine's ~/.aws.
SECRETS = {name: CANARY for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                     "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "SLACK_BOT_TOKEN",
                                     "SLACK_WEBHOOK_URL", "GITHUB_TOKEN", "JENKINS_TOKEN")}
NO_AWS_FILES = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_PROFILE": ""}


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "mlops.yaml").write_text(CONFIG)
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    return tmp_path


def show(mlops, folder, env, *args):
    r = mlops("config", "show", "--json", *args, cwd=folder, env=env)
    assert r.code == 0, r
    human = mlops("config", "show", *args, cwd=folder, env=env)
    assert human.code == 0, human
    for text in (r.out, r.err, human.out, human.err):
        assert CANARY not in text
    return r.json(), human.out


def test_cluster_profile_explains_endpoints_and_credential_sources(mlops, folder):
    env = {**SECRETS, **NO_AWS_FILES, "KUBECONFIG": str(folder / "kubeconfig")}
    doc, human = show(mlops, folder, env, "--profile", "cluster")
    assert {"file", "config", "overrides", "credentials", "components"} <= set(doc)  # old fields kept
    parts = doc["components"]
    assert set(parts) == {"data", "mlflow", "gitops", "experiment", "argocd", "slack", "github"}

    data = parts["data"]
    assert data["backend"] == "dvc-s3" and data["url"] == "s3://team-data/demo"
    assert data["endpoint"] == "http://minio.example:9000" and data["endpoint_source"] == "mlops.yaml data.endpoint_url"
    assert data["credentials"]["variables"]["AWS_SECRET_ACCESS_KEY"] == "set"
    assert data["credentials"]["variables"]["AWS_PROFILE"] == "not set"
    assert data["credentials"]["will_use"].startswith("environment")

    mlflow = parts["mlflow"]
    assert mlflow["backend"] == "tracking server" and mlflow["endpoint"] == "https://mlflow.example"
    assert mlflow["credentials"]["variables"] == {"MLFLOW_TRACKING_TOKEN": "set", "MLFLOW_TRACKING_USERNAME": "not set",
                                                  "MLFLOW_TRACKING_PASSWORD": "set"}
    assert mlflow["artifacts"]["store"] == "s3://team-mlflow/artifacts" and "proxied" in mlflow["artifacts"]["via"]

    assert parts["gitops"]["backend"] == "git https" and parts["gitops"]["credentials"]["variables"] == {
        "GITHUB_TOKEN": "set"}
    exp = parts["experiment"]
    assert exp["backend"] == "katib" and exp["namespace"] == "mlops"
    assert exp["endpoint"] == "https://k8s.example:6443" and exp["endpoint_source"] == "$KUBECONFIG"
    assert parts["slack"]["backend"] == "chat.postMessage to #ml"
    assert parts["github"]["backend"] == "GitHub pull requests" and parts["github"]["endpoint"] == "https://api.github.com"

    assert "data: dvc-s3 s3://team-data/demo -> http://minio.example:9000 (mlops.yaml data.endpoint_url)" in human
    assert "experiment: katib -> https://k8s.example:6443 ($KUBECONFIG)" in human
    assert "AWS_SECRET_ACCESS_KEY set" in human


def test_environment_overrides_and_credential_files_are_named(mlops, folder):
    creds = folder / "aws-credentials"
    creds.write_text(f"[ci]\naws_access_key_id = x\naws_secret_access_key = {CANARY}\n")
    env = {"AWS_ENDPOINT_URL": "https://s3.eu.example", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
           "AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "ci", "KUBECONFIG": "",
           "KUBERNETES_SERVICE_HOST": "", "HOME": str(folder)}
    doc, _ = show(mlops, folder, env, "--profile", "cluster")
    data = doc["components"]["data"]
    assert data["endpoint"] == "https://s3.eu.example" and data["endpoint_source"] == "$AWS_ENDPOINT_URL"
    assert data["credentials"]["files"] == {str(creds): "present"}
    assert data["credentials"]["will_use"] == f"shared credentials file {creds} (profile ci)"
    exp = doc["components"]["experiment"]
    assert exp["endpoint"] is None and "set KUBECONFIG" in exp["credentials"]["expected_from"]


def test_local_profile_needs_no_credentials(mlops, folder):
    doc, _ = show(mlops, folder, {**SECRETS, "SLACK_BOT_TOKEN": "", "SLACK_WEBHOOK_URL": "", "GITHUB_TOKEN": ""})
    parts = doc["components"]
    assert parts["data"]["backend"] == "dvc-local" and parts["data"]["credentials"]["expected_from"] == "none needed"
    assert parts["mlflow"]["backend"] == "local store" and parts["mlflow"]["endpoint"].startswith("sqlite:///")
    assert parts["gitops"]["credentials"]["expected_from"] == "none needed"
    assert parts["experiment"]["endpoint"] == "this machine (Optuna samplers)"
    assert parts["slack"]["backend"] == "log only" and parts["github"]["endpoint"].endswith("pull-requests")


def test_bad_profile_and_bad_endpoint_are_exit_2(mlops, folder):
    r = mlops("config", "show", "--profile", "prod", cwd=folder)
    assert r.code == 2 and "profile 'prod' is not defined" in r.err, r
    r = mlops("config", "show", "--profile", "cluster", cwd=folder,
              env={"AWS_ENDPOINT_URL": f"http://key:{CANARY}@minio:9000"})
    assert r.code == 2 and "$AWS_ENDPOINT_URL (overrides data.endpoint_url): must not carry credentials" in r.err, r
    assert CANARY not in r.out + r.err
    (folder / "mlops.yaml").write_text(CONFIG.replace("s3://team-mlflow/artifacts", "team-mlflow/artifacts"))
    r = mlops("config", "validate", "--profile", "cluster", cwd=folder)
    assert r.code == 2 and "mlflow.artifacts_destination: must be the tracking server's" in r.err, r
