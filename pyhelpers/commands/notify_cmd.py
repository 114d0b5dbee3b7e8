"""mlops notify experiment"""

from __future__ import annotations

import click

from pyhelpers.commands._common import Result, config_or_default, leaf


@click.group("notify")
def cli():
    """Notify people (Slack) about experiments and deployments."""


@leaf(cli, "experiment")
@click.option("--name", help="Experiment name or path to its experiment.json (default: the latest run).")
@click.option("--channel", help="Slack channel (default: notify.slack_channel).")
@click.option("--link", help="URL shown in the message (default: notify.link, else $BUILD_URL).")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Build the report PNG and upload it with the message (bot token only; needs the report extra).")
def experiment(name: str | None, channel: str | None, link: str | None, report: bool) -> Result:
    """Send the outcome and best trial of an Experiment to Slack (SLACK_BOT_TOKEN or
    SLACK_WEBHOOK_URL from the environment); always recorded in .mlops/notifications.jsonl."""
    import os

    from pyhelpers import notify
    from pyhelpers.experiment.runner import latest_experiment
    from pyhelpers.experiment.status import load_status

    cfg = config_or_default()
    doc = load_status(cfg, name or latest_experiment(cfg))
    message = notify.experiment_message(doc, link or cfg.notify.link or os.environ.get("BUILD_URL"),
                                        notify.current_champion(cfg))
    plot = None
    if report and os.environ.get("SLACK_BOT_TOKEN"):  # a webhook cannot carry files: no picture to draw
        plot = _report_plot(cfg, doc["metadata"]["name"])
    delivery = notify.send(cfg, message, "experiment", channel, attachment=plot)
    return Result({"delivery": delivery, "message": message}, f"{notify.readable(message)}\n({delivery['note']})")


def _report_plot(cfg, name: str) -> str | None:
    """The report PNG of the Experiment, or None (with a warning) where it cannot be drawn: the message
    matters more than its picture."""
    import sys

    try:
        from pyhelpers.experiment.report import build_report

        return build_report(cfg, name)["plot"]
    except ImportError as exc:
        print(f"warning: no report picture ({exc.name} is not installed: pip install 'mlops-pyhelpers[report]')",
              file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - see above
        print(f"warning: no report picture: {exc}", file=sys.stderr)
    return None


@leaf(cli, "failure")
@click.option("--message", required=True, help="What failed (e.g. the stage and the error).")
@click.option("--channel", help="Slack channel (default: notify.slack_channel).")
@click.option("--link", help="URL shown in the message (default: notify.link, else $BUILD_URL).")
def failure(message: str, channel: str | None, link: str | None) -> Result:
    """Tell people a line failed (used by the Jenkins lines' failure handlers)."""
    import os

    from pyhelpers import notify

    cfg = config_or_default()
    msg = notify.failure_message(message, link or cfg.notify.link or os.environ.get("BUILD_URL"), cfg.project)
    delivery = notify.send(cfg, msg, "failure", channel)
    return Result({"delivery": delivery, "message": msg}, f"{notify.readable(msg)}\n({delivery['note']})")


@leaf(cli, "deployment")
@click.option("--channel", help="Slack channel (default: notify.slack_channel).")
@click.option("--link", help="URL shown in the message (default: notify.link, else $BUILD_URL).")
def deployment(channel: str | None, link: str | None) -> Result:
    """Tell people which model version is the champion now (after the deploy line)."""
    import os

    from pyhelpers import notify
    from pyhelpers.errors import OperationFailed
    from pyhelpers.model.registry import get_champion

    cfg = config_or_default()
    champion = get_champion(cfg)
    if champion is None:
        raise OperationFailed(f"{cfg.registered_model} has no champion version: nothing to announce")
    msg = notify.deployment_message(champion, link=link or cfg.notify.link or os.environ.get("BUILD_URL"))
    delivery = notify.send(cfg, msg, "deployment", channel)
    return Result({"delivery": delivery, "message": msg}, f"{notify.readable(msg)}\n({delivery['note']})")
