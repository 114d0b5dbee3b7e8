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


# Blocks are built with slack_sdk.models.blocks: its to_dict() enforces Slack's limits (header 150
# characters, section text 3000, field 2000, 10 fields per section); texts are cut to fit first.
FIELD_MAX = 2000


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(text: str) -> dict:
    from slack_sdk.models.blocks import HeaderBlock

    return HeaderBlock(text=_cut(text, HeaderBlock.text_max_length)).to_dict()


def _section(text: str) -> dict:
    from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

    return SectionBlock(text=MarkdownTextObject(text=_cut(text, SectionBlock.text_max_length))).to_dict()


def _context(text: str) -> dict:
    from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject

    return ContextBlock(elements=[MarkdownTextObject(text=_cut(text, 3000))]).to_dict()


def _divider() -> dict:
    from slack_sdk.models.blocks import DividerBlock

    return DividerBlock().to_dict()


def _fields(pairs: list[tuple[str, str]]) -> list[dict]:
    """Section blocks of mrkdwn fields, chunked to Slack's limit."""
    from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

    blocks = []
    for i in range(0, len(pairs), MAX_FIELDS):
        chunk = pairs[i:i + MAX_FIELDS]
        blocks.append(SectionBlock(fields=[MarkdownTextObject(text=_cut(f"*{k}*\n{v}", FIELD_MAX))
                                           for k, v in chunk]).to_dict())
    return blocks


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _stop_reason(doc: dict, phase: str, reason: str) -> str:
    """Why the Experiment ended, in our words (not Katib's condition message)."""
    spec = doc.get("spec") or {}
    s = doc.get("status") or {}
    failed = s.get("trialsFailed", 0) + s.get("trialMetricsUnavailable", 0)
    if reason == "ExperimentGoalReached":
        return f"it stopped because a trial reached the goal ({(spec.get('objective') or {}).get('goal')})"
    if reason == "ExperimentMaxTrialsReached":
        return f"it ran all {spec.get('maxTrialCount', s.get('trials', '?'))} trials it was allowed (maxTrialCount)"
    if phase == "Failed" and "MaxFailed" in reason:
        return f"it stopped after {failed} failed trials (maxFailedTrialCount {spec.get('maxFailedTrialCount')})"
    if phase == "Failed":
        return f"it failed ({reason or 'no reason given'})"
    if "Suggestion" in reason or "Exhausted" in reason:
        return "the search space had no more parameters to try"
    return f"it ended {phase.lower()}" + (f" ({reason})" if reason else "")


def champion_comparison(champion: dict | None, objective: str, kind: str, value: float | None) -> str | None:
    """One sentence comparing the best trial with the serving champion, when they share the metric."""
    if not champion or value is None or champion.get("objective_metric") != objective:
        return None
    current = _number(champion.get("objective_value"))
    if current is None:
        return None
    better = value < current if kind == "minimize" else value > current
    change = abs(value - current) / abs(current) * 100 if current else 0.0
    head = f"The current champion, version {champion.get('version')}, has {objective} = {current:.6g}: "
    if value == current:
        return head + "the best trial ties with it."
    if better:
        return head + f"the best trial is {change:.1f} % better; `mlops line deploy` trains it and gates it."
    return head + f"the best trial is {change:.1f} % worse, so it would not replace the champion."


def current_champion(cfg) -> dict | None:
    """The champion to compare with, or None (no store yet, or the store cannot be read now)."""
    uri = cfg.tracking_uri
    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
        return None  # nothing registered yet: do not create a store just to look
    try:
        from pyhelpers.model.registry import get_champion

        return get_champion(cfg)
    except Exception:  # noqa: BLE001 - a comparison is a nicety: the notice goes out without it
        return None


def experiment_message(doc: dict, link: str | None = None, champion: dict | None = None) -> dict[str, Any]:
    """Block Kit message for a finished Experiment: what happened in one sentence of ours, the best
    trial against the current champion, its metrics and parameters."""
    name = doc["metadata"]["name"]
    phase = st.phase(doc)
    s = doc.get("status") or {}
    cond = next((c for c in reversed(s.get("conditions") or []) if c.get("status") == "True"), {})
    ok = phase == "Succeeded"
    best = st.best_trial(doc)
    icon = ":white_check_mark:" if ok and best else ":x:"
    title = f"Experiment {name} {phase.lower()}"
    data_version = (doc["metadata"].get("annotations") or {}).get("mlops.io/data-version")
    failed = s.get("trialsFailed", 0) + s.get("trialMetricsUnavailable", 0)
    objective = ((doc.get("spec") or {}).get("objective") or {})
    metric, kind = objective.get("objectiveMetricName"), objective.get("type", "minimize")
    on_data = f" on data `{data_version}`" if data_version else ""
    took = f" in {_duration(doc)}" if _duration(doc) else ""
    sentence = (f"{s.get('trials', 0)} trials ran{on_data}{took} ({s.get('trialsSucceeded', 0)} succeeded, "
                f"{failed} failed); {_stop_reason(doc, phase, cond.get('reason', ''))}.")
    obj = best["metrics"].get(metric) if best else None
    value = _number(obj["latest"]) if obj else None
    if best:
        shown = f"{value:.6g}" if value is not None else "?"
        sentence += f" The best trial, `{best['name']}`, reached {metric} = {shown}."
    else:
        sentence += " No trial reported the objective, so there is no best trial to deploy."
    comparison = champion_comparison(champion, metric, kind, value) if best else None
    summary = [("Outcome", f"{phase} ({cond.get('reason', '')})"),
               ("Trials", f"{s.get('trialsSucceeded', 0)} succeeded, {failed} failed, {s.get('trialsKilled', 0)} killed")]
    if _duration(doc):
        summary.append(("Duration", _duration(doc)))
    if data_version:
        summary.append(("Data version", f"`{data_version}`"))
    blocks: list[dict] = [_header(title), _section(f"{icon} {sentence}")]
    if comparison:
        blocks.append(_section(comparison))
    blocks += _fields(summary)
    text = f"{title}: {sentence}"
    if best:
        blocks.append(_divider())
        blocks.append(_section(f"*Best trial* `{best['name']}`"))
        # people read 6 significant digits; the exact values are in MLflow and `--json`
        metrics = [(m["name"], f"`{st.human_value(m['latest'])}`" + (" (objective)" if m["name"] == metric else ""))
                   for m in best["metrics"].values()]
        blocks += _fields(metrics)
        blocks.append(_section("*Parameters*"))
        blocks += _fields([(k, f"`{st.human_value(v)}`") for k, v in best["parameters"].items()])
    if comparison:
        text += f" {comparison}"
    if link:
        blocks.append(_context(f"<{link}|Open the build>"))
    return {"text": _cut(text, 3000), "blocks": blocks}


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
    blocks: list[dict] = [_header(title)]
    if decision and decision.get("reason"):
        icon = ":rocket:" if decision.get("promoted") else ":no_entry:"
        candidate = (decision.get("candidate") or {}).get("version")
        verdict = "promoted" if decision.get("promoted") else "not promoted"
        blocks.append(_section(f"{icon} candidate v{candidate} {verdict}: {decision['reason']}"))
    blocks += _fields(pairs)
    if link:
        blocks.append(_context(f"<{link}|Open the build>"))
    return {"text": f"{title} (data {champion.get('data_version')})", "blocks": blocks}


def failure_message(text: str, link: str | None = None, project: str = "") -> dict[str, Any]:
    """A line failed: what failed, and where to look."""
    title = f"{project + ': ' if project else ''}automation line failed"
    blocks: list[dict] = [_header(title), _section(f":x: {text}")]
    if link:
        blocks.append(_context(f"<{link}|Open the build>"))
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


def send(cfg, message: dict, kind: str, channel: str | None = None, attachment: str | None = None) -> dict[str, Any]:
    """Deliver ``message`` and record it in the notification log; returns how it was delivered.

    ``attachment`` (e.g. the report PNG) is uploaded into the message's thread when a bot token is
    set (files_upload_v2); a webhook cannot carry files. A failed upload is reported, not fatal."""
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
            if attachment and os.path.isfile(attachment):
                detail["file"] = _upload_file(token, detail, attachment, message["text"])
        elif webhook:
            via = "webhook"
            _post_webhook(webhook, message)
    except OperationFailed as exc:
        # the message is still recorded locally ("always recorded"), with why it was not delivered
        from pyhelpers.redaction import redact_secrets

        error = redact_secrets(str(exc))  # a file others read: never a credential, whatever the error says
        append_jsonl(cfg.notifications_log, {"time": now(), "kind": kind, "channel": channel, "via": via,
                                             "error": error, "message": message})
        raise OperationFailed(error) from None
    record = {"time": now(), "kind": kind, "channel": channel, "via": via, **detail, "message": message}
    append_jsonl(cfg.notifications_log, record)
    note = delivery_note(via, channel, str(cfg.notifications_log))
    if attachment and "file" not in detail:
        note += f"; the picture {os.path.basename(attachment)} goes to Slack only with SLACK_BOT_TOKEN (a webhook " \
                "cannot carry files)"
    elif (detail.get("file") or {}).get("uploaded"):
        note += f"; with {detail['file']['name']} in its thread"
    elif detail.get("file"):
        note += f"; {detail['file']['error']}"
    return {"via": via, "channel": channel, "log": str(cfg.notifications_log), **detail,
            "delivered": via != "log", "note": note}


def delivery_note(via: str, channel: str | None, log: str) -> str:
    """Whether Slack got the message, in words, and how to make it so when it did not."""
    if via == "chat.postMessage":
        return f"delivered to Slack channel {channel} (SLACK_BOT_TOKEN); also recorded in {log}"
    if via == "webhook":
        return f"delivered to Slack through the incoming webhook (SLACK_WEBHOOK_URL); also recorded in {log}"
    return (f"NOT sent to Slack, only recorded in {log}: Slack is not configured; set SLACK_BOT_TOKEN "
            "(with notify.slack_channel in mlops.yaml) or SLACK_WEBHOOK_URL in the environment or Jenkins credentials")


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
    return {"ts": resp.get("ts"), "channel_id": resp.get("channel")}


def _upload_file(token: str, posted: dict, path: str, title: str) -> dict:
    """The file into the thread of the message just posted (files.getUploadURLExternal + upload +
    files.completeUploadExternal, as slack_sdk's files_upload_v2 does)."""
    from slack_sdk import WebClient

    client = WebClient(token=token, timeout=30, **_client_kwargs())
    try:
        resp = client.files_upload_v2(channel=posted.get("channel_id"), thread_ts=posted.get("ts"), file=path,
                                      filename=os.path.basename(path), title=_cut(title, 250))
    except Exception as exc:  # noqa: BLE001 - the message is delivered; the picture is a bonus
        error = getattr(getattr(exc, "response", None), "get", lambda *_: None)("error") or type(exc).__name__
        return {"uploaded": False, "error": f"Slack file upload failed: {error}"}
    files = resp.get("files") or [resp.get("file") or {}]
    return {"uploaded": True, "id": (files[0] or {}).get("id"), "name": os.path.basename(path)}


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
