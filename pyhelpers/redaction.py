"""Which values of the environment are credentials, and text with them taken out.

Light on purpose (no pydantic, no config file): every command wraps its output with these before
anything else runs, and the deploy and lineage code shows remote URLs through ``redact_url``.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

# Credentials: read from the environment only, reported as set / not set, never printed.
CREDENTIALS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "S3 access for DVC and MLflow artifacts (or ~/.aws/credentials)",
    "AWS_SECRET_ACCESS_KEY": "S3 secret key for DVC and MLflow artifacts",
    "MLFLOW_TRACKING_TOKEN": "MLflow server bearer token",
    "MLFLOW_TRACKING_USERNAME": "MLflow server basic-auth user",
    "MLFLOW_TRACKING_PASSWORD": "MLflow server basic-auth password",
    "SLACK_BOT_TOKEN": "Slack bot token for chat.postMessage",
    "SLACK_WEBHOOK_URL": "Slack incoming webhook URL",
    "GITHUB_TOKEN": "GitHub token for pull requests and the GitOps remote",
    "JENKINS_USER": "Jenkins user for `mlops jenkins seed`",
    "JENKINS_TOKEN": "Jenkins API token for `mlops jenkins seed`",
    "KUBECONFIG": "kubeconfig path for Katib and Argo CD (in-cluster config when unset)",
}

# Where S3 clients (DVC, boto3, MLflow) look for credentials when the environment has none.
AWS_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def redact_url(url: str) -> str:
    """Drop user-info (``user:token@``) from a URL so it can be shown."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", url)


NOT_SECRET = ("KUBECONFIG", "AWS_PROFILE")  # a path to credentials, a profile name: not credentials themselves
MIN_SECRET_LENGTH = 8  # shorter values ("x", "test") would blank out ordinary words


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """The credential values of this environment, longest first; a webhook URL also by its path
    (the path is the credential: it leaks just as well without the host)."""
    env = os.environ if environ is None else environ
    values = set()
    for name in (*CREDENTIALS, *AWS_CREDENTIAL_VARS, "MLOPS_GIT_TOKEN"):
        value = env.get(name) or ""
        if name not in NOT_SECRET and len(value) >= MIN_SECRET_LENGTH:
            values.add(value)
            if "://" in value:
                path = urlsplit(value).path.strip("/")
                if len(path) >= MIN_SECRET_LENGTH:
                    values.add(path)
    return sorted(values, key=len, reverse=True)


def redact_secrets(text: str, environ: dict[str, str] | None = None) -> str:
    """``text`` with every credential value of the environment replaced by ***."""
    for value in secret_values(environ):
        if value in text:
            text = text.replace(value, "***")
    return text
