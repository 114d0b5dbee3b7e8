"""mlops experiment validate|run"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pyhelpers.commands._common import Result, config_or_default, leaf, parse_key_values


@click.group("experiment")
def cli():
    """Katib Experiments: validate a spec, run it on this machine."""


@leaf(cli, "validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def validate(file: Path) -> Result:
    """Check a Katib Experiment spec as the local engine would run it (exit 2 when invalid)."""
    from pyhelpers.experiment.spec import load_spec

    spec = load_spec(file)
    data = {"valid": True, "file": str(file), "name": spec.name, "algorithm": spec.algorithm,
            "parameters": [p.name for p in spec.parameters], "maxTrialCount": spec.max_trials,
            "parallelTrialCount": spec.parallel}
    return Result(data, f"{file}: valid Experiment {spec.name} ({spec.algorithm}, {len(spec.parameters)} parameters)")


@leaf(cli, "run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--local", is_flag=True, help="Run with the local engine (the only engine of `run`; "
              "use `experiment submit` for Katib on a cluster).")
@click.option("--name", help="Experiment name (default: metadata.name of the spec).")
@click.option("--path-map", "path_map", multiple=True, metavar="IMAGE_PATH=DIR",
              help="Map a path inside the training image to a local folder (adds to experiment.image_paths).")
@click.option("--dry-run", is_flag=True, help="Validate and show the first trial's command; run nothing.")
def run(file: Path | None, local: bool, name: str | None, path_map: tuple[str, ...], dry_run: bool) -> Result:
    """Run a Katib Experiment FILE on this machine (default: experiment.file of mlops.yaml).

    Results go to .mlops/experiments/NAME/: experiment.json (the Experiment with a Katib-shaped
    status) and one log per trial. Exit 0 when it Succeeded, 1 when it Failed or no trial
    succeeded, 2 for a bad spec.
    """
    from pyhelpers.errors import BadInput
    from pyhelpers.experiment.runner import dry_run_plan, run_local, summary
    from pyhelpers.experiment.spec import load_spec

    if not local:
        raise BadInput("`mlops experiment run` needs --local (cluster runs: `mlops experiment submit`)")
    cfg = config_or_default()
    path = file or cfg.experiment_file
    spec = load_spec(path)
    image_paths = cfg.image_path_map()
    image_paths.update({k: Path(v).resolve() for k, v in parse_key_values(path_map, "--path-map").items()})
    if dry_run:
        plan = dry_run_plan(spec, image_paths, name)
        return Result(plan, f"would run {plan['name']}: up to {plan['maxTrialCount']} trials, "
                      f"{plan['parallelTrialCount']} at a time; first trial: {' '.join(plan['firstTrialCommand'])}")
    doc, exit_code = run_local(cfg, spec, image_paths, name=name, live=sys.stderr.isatty())
    return Result(doc, summary(doc), exit_code)
