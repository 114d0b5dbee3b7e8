"""Slack Block Kit rendering and delivery (chat.postMessage, webhook) against a local Slack server."""

import json
import time

import pytest

from pyhelpers import notify
from pyhelpers.experiment.status import human_value
from tests.conftest import write_experiment
from tests.fakes.slack import SlackServer

CANARY = "xoxb-CANARY-7f3a9"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A project folder with one succeeded and one failed experiment run by the local engine."""
    from tests.conftest import run_mlops

    root = tmp_path_factory.mktemp("notify")
    (root / "mlops.yaml").write_text("project: notify-test\nnotify:\n  slack_channel: '#ml'\n")
    ok = write_experiment(root / "ok", name="good", max_trials=2)
    bad = write_experiment(root / "bad", name="bad", max_trials=2, max_failed=1)
    assert run_mlops("experiment", "run", "--local", str(ok), cwd=root).code == 0
    assert run_mlops("experiment", "run", "--local", str(bad), cwd=root, env={"TRIAL_MODE": "fail"}).code == 1
    return root


def load(root, name):
    return json.loads((root / ".mlops" / "experiments" / name / "experiment.json").read_text())


def test_message_carries_best_trial_metrics_and_all_parameters(finished):
    doc = load(finished, "good")
    msg = notify.experiment_message(doc, link="https://jenkins.example/job/1/")
    text = json.dumps(msg)
    best = doc["status"]["currentOptimalTrial"]
    assert msg["blocks"][0]["type"] == "header" and msg["blocks"][0]["text"]["type"] == "plain_text"
    assert msg["blocks"][0]["text"]["text"] == "Experiment good succeeded"
    for a in best["parameterAssignments"]:  # as people read them: 6 significant digits
        assert f"*{a['name']}*\\n`{human_value(a['value'])}`" in text
    assert best["bestTrialName"] in text and "ExperimentMaxTrialsReached" in text
    latest = best["observation"]["metrics"][0]["latest"]
    assert f"`{human_value(latest)}` (objective)" in text and f"{float(latest):.6g}" in msg["text"]  # 6 significant digits
    assert msg["blocks"][-1]["type"] == "context" and "jenkins.example" in text
    for block in msg["blocks"]:
        assert len(block.get("fields", [])) <= 10


def test_failed_experiment_message(finished):
    msg = notify.experiment_message(load(finished, "bad"))
    assert "Experiment bad failed" in msg["text"] and "No trial reported the objective" in msg["text"]
    assert ":x:" in json.dumps(msg)


def test_local_profile_logs_the_notification(mlops, finished):
    r = mlops("notify", "experiment", "--name", "good", cwd=finished)
    assert r.code == 0 and "NOT sent to Slack" in r.out and "== Experiment good succeeded ==" in r.out, r
    assert "SLACK_BOT_TOKEN" in r.out and "SLACK_WEBHOOK_URL" in r.out  # how to make it so
    record = json.loads((finished / ".mlops" / "notifications.jsonl").read_text().splitlines()[-1])
    assert record["via"] == "log" and record["message"]["blocks"]


def test_chat_post_message_delivers_blocks_without_leaking_the_token(mlops, finished):
    with SlackServer(token=CANARY) as slack:
        env = {"SLACK_BOT_TOKEN": CANARY, "SLACK_API_URL": slack.url + "/api/"}
        r = mlops("notify", "experiment", "--name", "good", "--json", "--no-report", cwd=finished, env=env)
        assert r.code == 0, r
        assert r.json()["delivery"]["via"] == "chat.postMessage" and r.json()["delivery"]["ts"]
        (req,) = slack.requests
        assert req["body"]["channel"] == "#ml" and req["body"]["blocks"] == r.json()["message"]["blocks"]
        assert CANARY not in r.out + r.err
        assert CANARY not in (finished / ".mlops" / "notifications.jsonl").read_text()


@pytest.mark.parametrize("token, channel, expected", [
    ("xoxb-wrong", "#ml", "invalid_auth: SLACK_BOT_TOKEN is not valid"),
    (CANARY, "#nowhere", "channel_not_found: channel '#nowhere' does not exist"),
])
def test_slack_errors_are_clear(mlops, finished, token, channel, expected):
    with SlackServer(token=CANARY) as slack:
        env = {"SLACK_BOT_TOKEN": token, "SLACK_API_URL": slack.url + "/api/"}
        r = mlops("notify", "experiment", "--name", "good", "--channel", channel, cwd=finished, env=env)
        assert r.code == 1 and expected in r.err, r
        assert token not in r.err


def test_rate_limit_honours_retry_after(mlops, finished):
    with SlackServer(token=CANARY) as slack:
        slack.responses.append((429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}))
        env = {"SLACK_BOT_TOKEN": CANARY, "SLACK_API_URL": slack.url + "/api/"}
        start = time.monotonic()
        r = mlops("notify", "experiment", "--name", "good", "--no-report", cwd=finished, env=env)
        assert r.code == 0, r
        assert len(slack.requests) == 2 and time.monotonic() - start >= 1.0


def test_webhook_delivery(mlops, finished):
    with SlackServer() as slack:
        r = mlops("notify", "experiment", "--name", "good", "--json", cwd=finished,
                  env={"SLACK_WEBHOOK_URL": slack.url + "/webhook"})
        assert r.code == 0 and r.json()["delivery"]["via"] == "webhook", r
        assert slack.requests[0]["body"]["blocks"] == r.json()["message"]["blocks"]
        assert slack.url not in r.out + r.err


def test_failure_notice_keeps_payloads_as_text(mlops, finished):
    payload = "stage Train: $(touch pwned) `touch pwned2`"
    with SlackServer(token=CANARY) as slack:
        env = {"SLACK_BOT_TOKEN": CANARY, "SLACK_API_URL": slack.url + "/api/", "BUILD_URL": "https://ci/job/7/"}
        r = mlops("notify", "failure", "--message", payload, "--json", cwd=finished, env=env)
        assert r.code == 0, r
        body = slack.requests[0]["body"]
        assert payload in json.dumps(body["blocks"]) and "https://ci/job/7/" in json.dumps(body["blocks"])
    assert not (finished / "pwned").exists() and not (finished / "pwned2").exists()


@pytest.mark.parametrize("status,body", [(404, "Cannot POST {path}"), (403, "invalid_token"), (500, "{path} failed")])
def test_webhook_errors_never_quote_the_url(status, body):
    """The webhook URL is the credential: an error page that quotes the request path (web frameworks'
    default 404 page does) must not bring it into the error message, which is printed and logged.
    Checked on the message itself, without the output redaction of the CLI layer behind it."""
    secret = "/services/T000/B000/s3cr3tw3bh00k"
    with SlackServer() as slack:
        slack.responses = [(status, {}, body.replace("{path}", secret))] * 5
        with pytest.raises(notify.OperationFailed) as failure:
            notify._post_webhook(f"{slack.url}{secret}", {"text": "t", "blocks": []})
    message = str(failure.value)
    assert "s3cr3tw3bh00k" not in message and f"HTTP {status}" in message
    if body == "invalid_token":
        assert "invalid_token" in message  # Slack's own short answers are kept: they say what is wrong


def test_message_speaks_its_own_sentence_not_katibs(finished):
    doc = load(finished, "good")
    msg = notify.experiment_message(doc)
    katib_sentence = next(c["message"] for c in doc["status"]["conditions"] if c["type"] == "Succeeded")
    assert katib_sentence not in json.dumps(msg)
    assert "2 trials ran" in msg["text"] and "maxTrialCount" in msg["text"]
    best = doc["status"]["currentOptimalTrial"]["bestTrialName"]
    assert f"The best trial, `{best}`, reached loss = " in msg["text"]


def test_best_trial_is_compared_with_the_champion(finished):
    doc = load(finished, "good")
    value = float(notify.st.best_trial(doc)["metrics"]["loss"]["latest"])
    worse_champion = {"version": "3", "objective_metric": "loss", "objective_value": value * 2 or 1.0}
    text = json.dumps(notify.experiment_message(doc, champion=worse_champion))
    assert "The current champion, version 3, has loss = " in text and "% better" in text
    better_champion = {"version": "4", "objective_metric": "loss", "objective_value": value - abs(value) - 1}
    assert "% worse, so it would not replace the champion" in json.dumps(
        notify.experiment_message(doc, champion=better_champion))
    other_metric = {"version": "5", "objective_metric": "accuracy", "objective_value": 0.9}
    assert "current champion" not in json.dumps(notify.experiment_message(doc, champion=other_metric))


def test_block_kit_limits_apply_to_long_values(finished):
    """Blocks come from slack_sdk.models.blocks: a text over Slack's limit is cut, never sent broken."""
    doc = load(finished, "good")
    doc["metadata"]["name"] = "x" * 400
    doc["status"]["currentOptimalTrial"]["parameterAssignments"][0]["value"] = "v" * 5000
    msg = notify.experiment_message(doc)
    assert len(msg["blocks"][0]["text"]["text"]) == 150
    fields = [f["text"] for b in msg["blocks"] for f in b.get("fields", [])]
    assert fields and max(len(f) for f in fields) <= 2000 and any(f.endswith("…`") or f.endswith("…") for f in fields)


def test_report_picture_goes_into_the_message_thread_with_a_bot_token(finished, tmp_path, monkeypatch):
    from pyhelpers.config import load_config

    cfg = load_config(finished / "mlops.yaml", environ={})
    picture = tmp_path / "trials.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # binary, as a PNG is
    message = notify.experiment_message(load(finished, "good"))
    with SlackServer(token=CANARY) as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", CANARY)
        monkeypatch.setenv("SLACK_API_URL", slack.url + "/api/")
        delivery = notify.send(cfg, message, "experiment", attachment=str(picture))
    assert delivery["delivered"] and delivery["file"] == {"uploaded": True, "id": "F0001", "name": "trials.png"}
    upload = slack.uploads["F0001"]
    assert upload["data"] == picture.read_bytes() and upload["filename"] == "trials.png"
    assert upload["channel_id"] == "C123" and upload["thread_ts"] == "1700000000.000100"
    assert "with trials.png in its thread" in delivery["note"]
    assert [r["path"] for r in slack.requests] == ["/api/chat.postMessage", "/api/files.getUploadURLExternal",
                                                   "/upload/F0001", "/api/files.completeUploadExternal"]

    monkeypatch.delenv("SLACK_BOT_TOKEN")
    logged = notify.send(cfg, message, "experiment", attachment=str(picture))
    assert not logged["delivered"] and "goes to Slack only with SLACK_BOT_TOKEN" in logged["note"]


def test_notify_experiment_uploads_the_report_picture_with_the_message(mlops, finished):
    """What Jenkins' mlopsNotify(command: 'experiment') runs: the report PNG of that Experiment goes
    into the message's thread, the same picture `mlops experiment report` draws."""
    with SlackServer(token=CANARY) as slack:
        env = {"SLACK_BOT_TOKEN": CANARY, "SLACK_API_URL": slack.url + "/api/"}
        r = mlops("notify", "experiment", "--name", "good", "--json", cwd=finished, env=env)
        assert r.code == 0, r
    plot = finished / ".mlops" / "experiments" / "good" / "trials.png"
    assert r.json()["delivery"]["file"] == {"uploaded": True, "id": "F0001", "name": "trials.png"}
    assert slack.uploads["F0001"]["data"] == plot.read_bytes() and plot.read_bytes().startswith(b"\x89PNG")
    assert [q["path"] for q in slack.requests][0] == "/api/chat.postMessage"
