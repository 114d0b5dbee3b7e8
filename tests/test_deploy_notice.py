"""Line 2 after the push: a deployment notice that cannot be delivered is a warning, not a failure.

The manifest is already in the GitOps repository when the notice goes out, so failing the line then
would make Jenkins report a failed deployment that in fact happened (and a retry would find nothing
to do). Fast: the steps before the notice (train, register, render, push — covered with real
MLflow and git in test_line_deploy.py) are replaced by their recorded results; the notice itself
goes through the real Slack client to the Slack stand-in, which answers 500 (then 404 no_service).
"""

from __future__ import annotations

import json

import pytest

from pyhelpers.config import load_config
from tests.fakes.slack import SlackServer

HOOK = "/services/T0/B0/NOTICE-CANARY"
CHAMPION = {"name": "taxi-fare", "version": "3", "run_id": "r3", "data_version": "dv-0123456789ab",
            "experiment": "taxi-fare-01234567", "best_trial": "taxi-fare-01234567-0002",
            "objective_metric": "validation-rmse", "objective_value": 2.5, "model_uri": "models:/taxi-fare/3"}


@pytest.fixture
def line(tmp_path, monkeypatch):
    """The deploy line with its steps before the notice replaced; returns the recorded calls."""
    from pyhelpers.deploy import gitops, publish
    from pyhelpers.model import registry, train

    (tmp_path / "mlops.yaml").write_text("project: taxi-fare\n")
    cfg = load_config(tmp_path / "mlops.yaml", environ={})
    calls: list[str] = []
    gate = {"name": "taxi-fare", "promoted": True, "unchanged": False, "reason": "2.00% better",
            "candidate": {"version": "3"}}
    monkeypatch.setattr(train, "train", lambda cfg, experiment: calls.append("train") or {
        "unchanged": False, "run_id": "r3", "experiment": CHAMPION["experiment"],
        "best_trial": CHAMPION["best_trial"], "parameters": {"alpha": "0.1"}})
    monkeypatch.setattr(registry, "register", lambda cfg, run_id: calls.append("register") or gate)
    monkeypatch.setattr(registry, "get_champion", lambda cfg: CHAMPION)
    monkeypatch.setattr(publish, "checked_manifests", lambda cfg, champion: ({"apps/taxi-fare/model.yaml": "x"}, None))
    monkeypatch.setattr(gitops, "commit_message", lambda champion: "Deploy taxi-fare version 3")
    monkeypatch.setattr(publish, "push", lambda cfg, files, message: calls.append("push") or {
        "changed": True, "commit": "3f2a9c1d5e7b8a6f4c2d1e0b9a8c7d6e5f4a3b2c", "paths": sorted(files),
        "repo": "gitops.git", "branch": "main"})
    return cfg, calls


@pytest.mark.parametrize("answers", [[(500, {}, "internal_error")] * 3, [(404, {}, "no_service")]])
def test_an_undelivered_notice_after_the_push_does_not_fail_the_line(line, monkeypatch, answers):
    from pyhelpers.line.deploy_line import human_summary, run_deploy_line

    cfg, calls = line
    with SlackServer() as slack:
        slack.responses = list(answers)
        monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url + HOOK)
        result, code = run_deploy_line(cfg, serve=False)
    assert calls == ["train", "register", "push"]
    assert (code, result["status"]) == (0, "completed")
    assert result["gitops_commit"].startswith("3f2a9c1d5e7b") and result["champion"]["version"] == "3"
    error = result["notification"]["error"]
    assert error.startswith(f"Slack webhook failed: HTTP {answers[0][0]}") and "CANARY" not in error
    assert result["steps"]["notify"] == {"error": error}
    assert "warning: the deployment notice was not delivered" in human_summary(cfg, {
        **result, "steps": {**result["steps"], "push": {"repo": "gitops.git"}}})
    record = json.loads(cfg.notifications_log.read_text().splitlines()[-1])
    assert record["kind"] == "deployment" and record["error"] == error  # kept locally for a later look


def test_a_delivered_notice_is_reported_as_sent(line, monkeypatch):
    from pyhelpers.line.deploy_line import run_deploy_line

    cfg, _ = line
    with SlackServer() as slack:
        monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url + "/webhook")
        result, code = run_deploy_line(cfg, serve=False)
        assert len(slack.requests) == 1 and "taxi-fare version 3 is the champion" in slack.requests[0]["body"]["text"]
    assert code == 0 and "notification" not in result and result["steps"]["notify"]["via"] == "webhook"


def test_the_summary_shows_parameters_to_six_significant_digits_and_json_keeps_them(line, monkeypatch):
    from pyhelpers.line.deploy_line import human_summary, run_deploy_line

    cfg, _ = line
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    result, _ = run_deploy_line(cfg, serve=False)
    result["steps"]["train"]["parameters"] = {"learning-rate": "0.17114372025585667", "n-estimators": "140",
                                              "loss": "squared_error"}
    text = human_summary(cfg, {**result, "steps": {**result["steps"], "push": {"repo": "gitops.git"}}})
    assert "learning-rate=0.171144, n-estimators=140, loss=squared_error" in text, text
    assert result["steps"]["train"]["parameters"]["learning-rate"] == "0.17114372025585667"  # --json: as trained
