"""Slack notifications: Block Kit messages, delivered with slack_sdk, always recorded locally.

Delivery is chosen from the environment: ``SLACK_BOT_TOKEN`` + a channel -> chat.postMessage,
else ``SLACK_WEBHOOK_URL`` -> incoming webhook, else (local profile) only the notification log
``.mlops/notifications.jsonl``. Tokens and webhook URLs are never printed or logged.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

from pyhelpers.errors import BadInput, OperationFailed
from pyhelpers.experiment import status as st
from pyhelpers.experiment.status import now
from pyhelpers.fsutil import append_jsonl

MAX_FIELDS = 10  # Slack allows at most 10 fields per section block


def _duration(doc: dict) -> str | None:
    s = doc.get("status") or {}
    try:
        start = datetime.fromisoformat(s["startTime"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(s["completionTime"].replace("Z", "+00:00"))
    except (KeyError, ValueError, AttributeError):
        return None
    seconds = int((end - start).total_seconds())
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _fields(pairs: list[tuple[str, str]]) -> list[dict]:
    """Section blocks of mrkdwn fields, chunked to Slack's limit."""
    blocks = []
    for i in range(0, len(pairs), MAX_FIELDS):
        chunk = pairs[i:i + MAX_FIELDS]
        blocks.append({"type": "section",
                       "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in chunk]})
    return blocks


def experiment_message(doc: dict, link: str | None = None) -> dict[str, Any]:
    """Block Kit message for a finished Experiment: outcome, best trial metrics and parameters."""
    name = doc["metadata"]["name"]
    phase = st.phase(doc)
    s = doc.get("status") or {}
    cond = next((c for c in reversed(s.get("conditions") or []) if c.get("status") == "True"), {})
    ok = phase == "Succeeded"
    best = st.best_trial(doc)
    icon = ":white_check_mark:" if ok and best else ":x:"
    title = f"Experiment {name} {phase.lower()}"
    data_version = (doc["metadata"].get("annotations") or {}).get("mlops.io/data-version")
    summary = [
        ("Outcome", f"{phase} ({cond.get('reason', '')})"),
        ("Trials", f"{s.get('trialsSucceeded', 0)} succeeded, "
                   f"{s.get('trialsFailed', 0) + s.get('trialMetricsUnavailable', 0)} failed, "
                   f"{s.get('trialsKilled', 0)} killed"),
    ]
    if _duration(doc):
        summary.append(("Duration", _duration(doc)))
    if data_version:
        summary.append(("Data version", f"`{data_version}`"))
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {cond.get('message', '')}"}},
        *_fields(summary),
    ]
    text = f"{title}: {cond.get('reason', '')}"
    if best:
        objective = doc["spec"]["objective"]["objectiveMetricName"]
        blocks.append({"type": "divider"})
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                    "text": f"*Best trial* `{best['name']}`"}})
        metrics = [(m["name"], f"`{m['latest']}`" + (" (objective)" if m["name"] == objective else ""))
                   for m in best["metrics"].values()]
        blocks += _fields(metrics)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Parameters*"}})
        blocks += _fields([(k, f"`{v}`") for k, v in best["parameters"].items()])
        obj = best["metrics"].get(objective)
        text += f"; best {best['name']} {objective}={obj['latest'] if obj else '?'}"
    else:
        text += "; no trial succeeded"
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open the build>"}]})
    return {"text": text, "blocks": blocks}


def deployment_message(champion: dict, decision: dict | None = None, link: str | None = None,
                       gitops: dict | None = None) -> dict[str, Any]:
    """The model now serving (the champion), why, and where its manifest is."""
    name, version = champion["name"], champion["version"]
    title = f"{name} version {version} is the champion"
    pairs = [("Model", f"`{name}` v{version}"), ("Data version", f"`{champion.get('data_version')}`"),
             ("Run", f"`{champion.get('run_id')}`"), ("Experiment", f"{champion.get('experiment')} / "
                                                                   f"{champion.get('best_trial')}")]
    if champion.get("objective_metric"):
        pairs.append((champion["objective_metric"], f"`{champion.get('objective_value')}`"))
    if gitops:
        pairs.append(("Manifest", f"{', '.join(gitops.get('paths') or [])} @ `{str(gitops.get('commit'))[:12]}`"))
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    if decision and decision.get("reason"):
        icon = ":rocket:" if decision.get("promoted") else ":no_entry:"
        candidate = (decision.get("candidate") or {}).get("version")
        verdict = "promoted" if decision.get("promoted") else "not promoted"
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f"{icon} candidate v{candidate} {verdict}: {decision['reason']}"}})
    blocks += _fields(pairs)
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open the build>"}]})
    return {"text": f"{title} (data {champion.get('data_version')})", "blocks": blocks}


def failure_message(text: str, link: str | None = None, project: str = "") -> dict[str, Any]:
    """A line failed: what failed, and where to look."""
    title = f"{project + ': ' if project else ''}automation line failed"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f":x: {text[:2900]}"}},
    ]
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open the build>"}]})
    return {"text": f"{title}: {text[:200]}", "blocks": blocks}


def readable(message: dict) -> str:
    """A terminal rendering of a Block Kit message (what people would see in Slack)."""
    lines = []
    for block in message["blocks"]:
        if block["type"] == "header":
            lines.append(f"== {block['text']['text']} ==")
        elif block["type"] == "section" and "text" in block:
            lines.append(block["text"]["text"])
        elif block["type"] == "section":
            lines += ["  " + f["text"].replace("\n", ": ", 1).replace("*", "") for f in block["fields"]]
        elif block["type"] == "context":
            lines += [e["text"] for e in block["elements"]]
    return "\n".join(lines)


def send(cfg, message: dict, kind: str, channel: str | None = None) -> dict[str, Any]:
    """Deliver ``message`` and record it in the notification log; returns how it was delivered."""
    channel = channel or cfg.notify.slack_channel
    token = os.environ.get("SLACK_BOT_TOKEN")
    webhook = os.environ.get("SLACK_WEBHOOK_URL")
    via, detail = "log", {}
    if token and not channel:
        raise BadInput("SLACK_BOT_TOKEN is set but no channel: set notify.slack_channel in mlops.yaml",
                       source=cfg.source)
    try:
        if token:
            via = "chat.postMessage"
            detail = _post_message(token, channel, message)
        elif webhook:
            via = "webhook"
            _post_webhook(webhook, message)
    except OperationFailed as exc:
        # the message is still recorded locally ("always recorded"), with why it was not delivered
        from pyhelpers.config import redact_secrets

        error = redact_secrets(str(exc))  # a file others read: never a credential, whatever the error says
        append_jsonl(cfg.notifications_log, {"time": now(), "kind": kind, "channel": channel, "via": via,
                                             "error": error, "message": message})
        raise OperationFailed(error) from None
    record = {"time": now(), "kind": kind, "channel": channel, "via": via, **detail, "message": message}
    append_jsonl(cfg.notifications_log, record)
    return {"via": via, "channel": channel, "log": str(cfg.notifications_log), **detail}


def _client_kwargs() -> dict:
    base = os.environ.get("SLACK_API_URL")  # e.g. a test server; slack_sdk's default otherwise
    return {"base_url": base.rstrip("/") + "/"} if base else {}


def _post_message(token: str, channel: str, message: dict) -> dict:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

    client = WebClient(token=token, timeout=15, **_client_kwargs())
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(ServerErrorRetryHandler(max_retry_count=2))  # 500/503: bounded, backed off
    try:
        resp = client.chat_postMessage(channel=channel, text=message["text"], blocks=message["blocks"])
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown_error") if exc.response is not None else "unknown_error"
        hints = {"invalid_auth": "SLACK_BOT_TOKEN is not valid", "not_authed": "SLACK_BOT_TOKEN is not valid",
                 "channel_not_found": f"channel {channel!r} does not exist or the bot is not in it",
                 "ratelimited": "Slack kept rate-limiting after retries"}
        raise OperationFailed(f"Slack chat.postMessage failed: {error}: {hints.get(error, 'see Slack API docs')}") from None
    except Exception as exc:  # noqa: BLE001 - network errors: one line, no token
        raise OperationFailed(f"Slack chat.postMessage failed: {type(exc).__name__}") from None
    return {"ts": resp.get("ts")}


def _post_webhook(url: str, message: dict) -> None:
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler
    from slack_sdk.webhook import WebhookClient

    client = WebhookClient(url, timeout=15, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3),
                                                            ServerErrorRetryHandler(max_retry_count=2)])
    try:
        resp = client.send(text=message["text"], blocks=message["blocks"])
    except Exception as exc:  # noqa: BLE001 - the URL is a secret: never echo it
        raise OperationFailed(f"Slack webhook failed: {type(exc).__name__}") from None
    if resp.status_code != 200:
        # Slack answers with a short code (invalid_token, no_service, channel_is_archived); a proxy's error
        # page may quote the request path, which is the webhook's secret: only a code-like answer is shown.
        body = (resp.body or "").strip()
        code = body if re.fullmatch(r"[a-z_]{1,40}", body) else "(answer not shown)"
        raise OperationFailed(f"Slack webhook failed: HTTP {resp.status_code} {code}")
