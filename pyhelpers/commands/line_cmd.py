"""mlops line data|deploy"""

from __future__ import annotations

import sys

import click

from pyhelpers.commands._common import Result, leaf, load_project_config, project_locked


@click.group("line")
def cli():
    """Run an automation line end to end."""


@leaf(cli, "data")
@click.option("--local", is_flag=True, help="Run the Experiment with the local engine (embedded defaults).")
@click.option("--force", is_flag=True, help="Run even when this data version was already processed.")
@click.option("--image", help="Katib: training image of the trials (default: image.name:<data version>-<commit[:8]>, "
              "the tag mlopsImage pushes).")
def data_line(local: bool, force: bool, image: str | None) -> Result:
    """Line 1: new data -> Experiment -> Slack. A no-op when the data version was processed."""
    from pyhelpers import notify
    from pyhelpers.experiment.runner import summary
    from pyhelpers.experiment.status import load_status
    from pyhelpers.line.data_line import run_data_line

    cfg = load_project_config()
    with project_locked(cfg):
        result, code = run_data_line(cfg, force=force, local=local, live=sys.stderr.isatty(), image=image)
    if result["status"] == "unchanged":
        human = f"data {result['data_version']} is unchanged since the last run: nothing to do"
    else:
        doc = load_status(cfg, result["experiment"])
        note = result["notification"]
        message = note.get("readable") or notify.readable(notify.experiment_message(doc, cfg.notify.link))
        how = note.get("note") or f"NOT delivered: {note['error']}"
        human = f"{summary(doc)}\n\nnotification ({how}):\n{message}"
    return Result(result, human, code)


@leaf(cli, "deploy")
@click.option("--local", is_flag=True, help="Serve and smoke-test the model locally with MLServer before the push.")
@click.option("--experiment", help="Experiment name or status file (default: the one run last here).")
@click.option("--port", type=click.IntRange(1, 65535), help="With --local: HTTP port (default: deploy.serve_port).")
@click.option("--metrics-port", type=click.IntRange(1, 65535),
              help="With --local: metrics port (default: deploy.metrics_port).")
def deploy_line(local: bool, experiment: str | None, port: int | None, metrics_port: int | None) -> Result:
    """Line 2: train the best trial -> register and gate -> render -> (serve + smoke) -> GitOps push.

    A rerun with the same data and model changes nothing: no new model version, no new commit.
    """
    from pyhelpers.line.deploy_line import human_summary, run_deploy_line

    cfg = load_project_config()
    with project_locked(cfg):
        result, code = run_deploy_line(cfg, experiment, serve=local, port=port, metrics_port=metrics_port)
    return Result(result, human_summary(cfg, result), code)
