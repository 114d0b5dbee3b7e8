"""Secrets never reach a message, a log line or the notification log — on failure paths too.

A Slack incoming-webhook URL is itself the credential (anyone holding it can post), so it must
never appear in an error; a bot token neither. URLs with user-info (``https://user:token@host``)
are shown with the user-info replaced. The Slack stand-in (tests/fakes/slack.py) answers as Slack
does; scripted answers play its failures (5xx, 404 ``no_service`` for a revoked webhook,
``invalid_auth``).
"""

from __future__ import annotations

import json
import re
import socket

import pytest

from pyhelpers import notify
from pyhelpers.config import load_config, redact_secrets, redact_url
from pyhelpers.deploy.gitops import redact
from pyhelpers.errors import BadInput, OperationFailed
from tests.fakes.slack import SlackServer

HOOK_SECRET = "B0CANARY/xq7TzPlk9VwS3cRet"  # the secret part of a webhook URL
TOKEN = "xoxb-CANARY-51d0e-token"
MESSAGE = {"text": "hello", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}]}


# -- URLs with user-info -------------------------------------------------------------------------
@pytest.mark.parametrize("redactor", [redact, redact_url])
def test_user_info_in_urls_is_replaced(redactor):
    assert redactor("https://x-access-token:ghp_SECRET@github.com/acme/gitops.git") == \
        "https://***@github.com/acme/gitops.git"
    assert redactor("fatal: could not read from http://bob:pw@127.0.0.1:8080/r.git and s3://key@bucket/p") == \
        "fatal: could not read from http://***@127.0.0.1:8080/r.git and s3://***@bucket/p"


@pytest.mark.parametrize("redactor", [redact, redact_url])
def test_urls_without_user_info_are_left_alone(redactor):
    for text in ("https://github.com/acme/gitops.git", "git@github.com:acme/gitops.git",
                 "/srv/git/gitops.git", "mail bob@example.com about http://host/a@b"):
        assert redactor(text) == text


def test_known_secrets_are_replaced_anywhere_in_the_text():
    text = "remote: Invalid token ghp_SECRET for https://github.com/acme/r.git (ghp_SECRET)"
    assert redact(text, ("ghp_SECRET",)) == "remote: Invalid token *** for https://github.com/acme/r.git (***)"
    assert redact(text, ("", "ghp_SECRET")) == redact(text, ("ghp_SECRET",))  # an unset secret is no secret
    assert redact(RuntimeError("token ghp_SECRET"), ("ghp_SECRET",)) == "token ***"  # any object's text


def test_user_info_and_secrets_together():
    assert redact("https://u:tok@host/r tok", ("tok",)) == "https://***@host/r ***"


# -- credential values of the environment, wherever they turn up ---------------------------------
def test_every_credential_value_of_the_environment_is_blanked():
    env = {"GITHUB_TOKEN": "ghp_abcdefgh", "AWS_SECRET_ACCESS_KEY": "ghp_abcdefgh_LONGER", "AWS_SESSION_TOKEN":
           "FwoGZXIvYXdz", "MLOPS_GIT_TOKEN": "gitpass123", "JENKINS_TOKEN": "11aa22bb33"}
    text = "auth ghp_abcdefgh_LONGER, then ghp_abcdefgh; session FwoGZXIvYXdz git gitpass123 jenkins 11aa22bb33"
    # the longest value first: a value containing another is blanked whole, not as ***_LONGER
    assert redact_secrets(text, env) == "auth ***, then ***; session *** git *** jenkins ***"


def test_a_webhook_url_is_blanked_whole_and_by_its_path():
    env = {"SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/T0/{HOOK_SECRET}"}
    assert redact_secrets(f"POST https://hooks.slack.com/services/T0/{HOOK_SECRET} failed", env) == "POST *** failed"
    assert redact_secrets(f"404 for /services/T0/{HOOK_SECRET}", env) == "404 for /***"


def test_a_webhook_path_is_blanked_from_eight_characters_whatever_its_last_letter():
    assert redact_secrets("GET /hooks/T0/B0/abcX done", {"SLACK_WEBHOOK_URL": "https://h/hooks/T0/B0/abcX"}) == \
        "GET /*** done"
    assert redact_secrets("404 /abcdefgh", {"SLACK_WEBHOOK_URL": "http://h/abcdefgh/"}) == "404 /***"


def test_short_values_and_paths_to_credentials_are_not_blanked():
    env = {"GITHUB_TOKEN": "1234567", "KUBECONFIG": "/home/ci/.kube/config-production",
           "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook", "JENKINS_USER": "ci-robot", "AWS_PROFILE": "production"}
    text = "1234567 /home/ci/.kube/config-production hook http://127.0.0.1:9/hook ci-robot profile production"
    # 7 characters would blank ordinary words; a kubeconfig path is where credentials are, not one, and an
    # AWS profile names a section of them; a URL path under 8 characters is kept (the whole URL is still blanked)
    assert redact_secrets(text, env) == "1234567 /home/ci/.kube/config-production hook *** *** profile production"


def test_the_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2-longer")
    assert redact_secrets("login hunter2-longer") == "login ***"
    assert redact_secrets("nothing secret here", {}) == "nothing secret here"


# -- Slack: failures must not echo the credential ------------------------------------------------
@pytest.fixture
def project(tmp_path):
    (tmp_path / "mlops.yaml").write_text("project: redaction\nnotify:\n  slack_channel: '#ml'\n")
    return load_config(tmp_path / "mlops.yaml", environ={})


@pytest.fixture
def slack():
    with SlackServer(token=TOKEN) as server:
        yield server


def send_failing(project, monkeypatch, **env) -> str:
    for key in ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "SLACK_API_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(OperationFailed) as caught:
        notify.send(project, MESSAGE, "experiment")
    return str(caught.value)


def logged(project) -> str:
    return project.notifications_log.read_text()


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert HOOK_SECRET not in text and "CANARY" not in text and TOKEN not in text, text


def test_webhook_server_error_names_the_status_not_the_url(project, slack, monkeypatch):
    slack.responses = [(500, {}, "internal_error")] * 3  # the first try and two retries
    error = send_failing(project, monkeypatch, SLACK_WEBHOOK_URL=f"{slack.url}/services/T0/{HOOK_SECRET}")
    assert error.startswith("Slack webhook failed: HTTP 500")
    assert len(slack.requests) == 3  # retried, bounded
    assert_no_secret(error, logged(project))
    record = json.loads(logged(project).splitlines()[-1])
    assert (record["via"], record["kind"], record["channel"], record["error"]) == ("webhook", "experiment", "#ml", error)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"])
    assert record["message"] == MESSAGE  # kept locally although not delivered


def test_revoked_webhook_names_slacks_reason_not_the_url(project, slack, monkeypatch):
    slack.responses = [(404, {}, "no_service")]
    error = send_failing(project, monkeypatch, SLACK_WEBHOOK_URL=f"{slack.url}/services/T0/{HOOK_SECRET}")
    assert error.startswith("Slack webhook failed: HTTP 404 ") and "no_service" in error
    assert_no_secret(error, logged(project))


def test_unreachable_webhook_is_one_line_without_the_url(project, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = send_failing(project, monkeypatch, SLACK_WEBHOOK_URL=f"http://127.0.0.1:{port}/services/T0/{HOOK_SECRET}")
    assert error == "Slack webhook failed: URLError"  # the kind of failure, never the URL it went to
    assert_no_secret(error, logged(project))


def test_webhook_success_is_recorded_without_the_url(project, slack, monkeypatch):
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{slack.url}/webhook")
    out = notify.send(project, MESSAGE, "deployment")
    assert (out["via"], out["channel"], out["delivered"]) == ("webhook", "#ml", True)
    assert out["note"] == ("delivered to Slack through the incoming webhook (SLACK_WEBHOOK_URL); also recorded in "
                           f"{project.notifications_log}")
    assert slack.requests[0]["body"]["text"] == "hello" and slack.requests[0]["body"]["blocks"] == MESSAGE["blocks"]
    assert "/webhook" not in logged(project) and json.loads(logged(project))["kind"] == "deployment"


def test_rejected_bot_token_says_so_without_the_token(project, slack, monkeypatch):
    error = send_failing(project, monkeypatch, SLACK_BOT_TOKEN="xoxb-CANARY-wrong", SLACK_API_URL=slack.url + "/api/")
    assert error == "Slack chat.postMessage failed: invalid_auth: SLACK_BOT_TOKEN is not valid"
    assert_no_secret(error, logged(project))
    assert slack.requests[0]["path"] == "/api/chat.postMessage"


def test_unknown_channel_is_named(project, slack, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.url + "/api")
    with pytest.raises(OperationFailed) as caught:
        notify.send(project, MESSAGE, "experiment", channel="#nope")
    assert str(caught.value) == ("Slack chat.postMessage failed: channel_not_found: channel '#nope' does not "
                                 "exist or the bot is not in it")
    assert_no_secret(str(caught.value), logged(project))


def test_bot_token_server_error_and_unreachable_api(project, slack, monkeypatch):
    slack.responses = [(503, {}, {"ok": False, "error": "service_unavailable"})] * 3
    error = send_failing(project, monkeypatch, SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=slack.url + "/api/")
    assert error.startswith("Slack chat.postMessage failed: ") and len(slack.requests) == 3
    assert_no_secret(error, logged(project))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = send_failing(project, monkeypatch, SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=f"http://127.0.0.1:{port}")
    assert error == "Slack chat.postMessage failed: URLError"
    assert_no_secret(error, logged(project))


def test_bot_token_delivery_is_recorded_with_its_timestamp_only(project, slack, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{slack.url}/services/T0/{HOOK_SECRET}")  # the token wins
    monkeypatch.setenv("SLACK_API_URL", slack.url + "/api/")
    out = notify.send(project, MESSAGE, "experiment")
    assert (out["via"], out["channel"], out["ts"], out["delivered"]) == ("chat.postMessage", "#ml",
                                                                         "1700000000.000100", True)
    assert out["note"] == f"delivered to Slack channel #ml (SLACK_BOT_TOKEN); also recorded in {project.notifications_log}"
    assert out["channel_id"] == "C123"  # the channel's id as Slack answered
    assert [r["path"] for r in slack.requests] == ["/api/chat.postMessage"]
    body = slack.requests[0]["body"]
    assert (body["channel"], body["text"], body["blocks"]) == ("#ml", "hello", MESSAGE["blocks"])
    assert_no_secret(logged(project))
    record = json.loads(logged(project))
    assert {k: record[k] for k in ("kind", "channel", "via", "ts")} == {
        "kind": "experiment", "channel": "#ml", "via": "chat.postMessage", "ts": "1700000000.000100"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"])


def test_a_token_without_a_channel_is_bad_input_before_any_request(tmp_path, slack, monkeypatch):
    (tmp_path / "mlops.yaml").write_text("project: redaction\n")
    cfg = load_config(tmp_path / "mlops.yaml", environ={})
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.url + "/api/")
    with pytest.raises(BadInput) as caught:
        notify.send(cfg, MESSAGE, "experiment")
    assert str(caught.value) == (f"{tmp_path / 'mlops.yaml'}: SLACK_BOT_TOKEN is set but no channel: set "
                                 "notify.slack_channel in mlops.yaml")
    assert slack.requests == []


def test_without_credentials_the_message_is_only_logged(project, monkeypatch):
    for key in ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    out = notify.send(project, MESSAGE, "experiment")
    assert (out["via"], out["delivered"], out["log"]) == ("log", False, str(project.notifications_log))
    assert out["note"].startswith(f"NOT sent to Slack, only recorded in {project.notifications_log}: ")
    assert json.loads(logged(project))["message"] == MESSAGE


def test_rate_limited_webhook_is_retried_three_times_then_named(project, slack, monkeypatch):
    slack.responses = [(429, {"Retry-After": "0"}, "rate_limited")] * 4
    error = send_failing(project, monkeypatch, SLACK_WEBHOOK_URL=f"{slack.url}/services/T0/{HOOK_SECRET}")
    assert error.startswith("Slack webhook failed: HTTP 429") and len(slack.requests) == 4
    assert_no_secret(error, logged(project))


@pytest.mark.parametrize("page", [
    "<html>" + "x" * 200 + f"/services/T0/{HOOK_SECRET}</html>",   # a proxy's error page quoting the request
    f"<html>no route to /services/T0/{HOOK_SECRET}</html>",         # ... a short one
])
def test_an_error_page_quoting_the_webhook_path_does_not_leak_it(project, slack, monkeypatch, page):
    slack.responses = [(403, {}, page)]
    error = send_failing(project, monkeypatch, SLACK_WEBHOOK_URL=f"{slack.url}/services/T0/{HOOK_SECRET}")
    assert error == "Slack webhook failed: HTTP 403 (answer not shown)"  # only Slack's short codes are quoted
    assert_no_secret(error, logged(project))


def test_rate_limited_bot_is_retried_three_times_then_named(project, slack, monkeypatch):
    slack.responses = [(429, {"Retry-After": "0"}, {"ok": False, "error": "ratelimited"})] * 4
    error = send_failing(project, monkeypatch, SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=slack.url + "/api/")
    assert error == "Slack chat.postMessage failed: ratelimited: Slack kept rate-limiting after retries"
    assert len(slack.requests) == 4


@pytest.mark.parametrize(("answer", "message"), [
    ({"ok": False, "error": "not_authed"}, "not_authed: SLACK_BOT_TOKEN is not valid"),
    ({"ok": False, "error": "is_archived"}, "is_archived: see Slack API docs"),
    ({"ok": False}, "unknown_error: see Slack API docs"),
])
def test_slack_api_errors_are_named_with_a_hint(project, slack, monkeypatch, answer, message):
    slack.responses = [(200, {}, answer)]
    error = send_failing(project, monkeypatch, SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=slack.url + "/api")
    assert error == f"Slack chat.postMessage failed: {message}"
    assert_no_secret(error, logged(project))
