"""mlops model train|register|promote|rollback|champion"""

from __future__ import annotations

import click

from pyhelpers.commands._common import Result, leaf, load_project_config, project_locked


@click.group("model")
def cli():
    """MLflow models: train the best trial, register and gate, promote, roll back."""


def _metric_text(value) -> str:
    return "n/a" if value is None else f"{value:.6g}"


@leaf(cli, "train")
@click.option("--experiment", metavar="NAME|FILE",
              help="Finished Experiment: its name, its Katib YAML file or an experiment.json "
                   "(default: the Experiment run last here, else experiment.file of mlops.yaml).")
def train(experiment: str | None) -> Result:
    """Retrain the Experiment's best trial inside an MLflow run and log the model.

    A run with the same data version, parameters and git commit is reused (reported unchanged).
    """
    from pyhelpers.model.train import train as do_train

    cfg = load_project_config()
    with project_locked(cfg):
        out = do_train(cfg, experiment)
    metric = out.get("objective_metric") or "objective"
    verb = "unchanged: already trained in" if out["unchanged"] else "trained in"
    human = (f"{out['experiment']} best trial {out['best_trial']} {verb} run {out['run_id']}\n"
             f"  model {out['model_uri']}  {metric}={_metric_text(out.get('objective_value'))}\n"
             f"  data {out['data_version'] or 'unknown'}  commit {out['git_commit'] or 'unknown'}")
    return Result(out, human)


@leaf(cli, "register")
@click.option("--run-id", help="Training run to register (default: the latest run of `mlops model train`).")
def register(run_id: str | None) -> Result:
    """Register the trained model and promote it to champion when it beats the champion.

    The candidate and the champion are scored on the candidate's validation rows; promotion needs
    the relative gain mlflow.min_improvement of mlops.yaml. Otherwise the version stays
    registered, not promoted, and the reason is reported.
    """
    import re

    from pyhelpers.errors import BadInput
    from pyhelpers.model.registry import register as do_register

    if run_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id):
        shown = run_id if len(run_id) <= 40 else run_id[:37] + "..."
        raise BadInput(f"--run-id: {shown!r} is not an MLflow run id (letters, digits, '-', '_')")

    cfg = load_project_config()
    with project_locked(cfg):
        out = do_register(cfg, run_id)
    cand = out["candidate"]
    head = f"{out['name']} v{cand['version']} (run {cand['run_id']})"
    state = "champion" if out["promoted"] else "registered, not promoted"
    prefix = "unchanged: " if out["unchanged"] else ""
    return Result(out, f"{prefix}{head}: {state}\n  {out['reason']}")


@leaf(cli, "promote")
@click.argument("version")
def promote(version: str) -> Result:
    """Give VERSION the champion alias (by hand, without the gate)."""
    from pyhelpers.model.registry import promote as do_promote

    cfg = load_project_config()
    with project_locked(cfg):
        out = do_promote(cfg, version)
    if out["unchanged"]:
        return Result(out, f"unchanged: {out['name']} v{out['version']} is already champion")
    was = f" (was v{out['previous']})" if out["previous"] else ""
    return Result(out, f"{out['name']} v{out['version']} is now champion{was}")


@leaf(cli, "rollback")
def rollback() -> Result:
    """Move the champion alias back to the previous champion (exit 2 when there is none)."""
    from pyhelpers.model.registry import rollback as do_rollback

    cfg = load_project_config()
    with project_locked(cfg):
        out = do_rollback(cfg)
    return Result(out, f"{out['name']}: champion rolled back from v{out['previous']} to v{out['version']}")


@leaf(cli, "champion")
def champion() -> Result:
    """Show the version serving as champion, with its lineage (JSON: {"champion": null} when none)."""
    from pyhelpers.model.registry import get_champion

    cfg = load_project_config()
    champ = get_champion(cfg)
    if champ is None:
        return Result({"champion": None}, f"{cfg.registered_model}: no champion yet")
    human = "\n".join(f"{key:17} {value}" for key, value in champ.items())
    return Result({"champion": champ}, human)
