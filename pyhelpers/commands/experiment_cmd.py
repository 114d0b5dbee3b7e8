"""mlops experiment validate|run"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pyhelpers.commands._common import Result, config_or_default, leaf, parse_key_values


@click.group("experiment")
def cli():
    """Katib Experiments: validate, run on this machine, or submit to Katib on a cluster."""


@leaf(cli, "validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--engine", type=click.Choice(["local", "katib"]), default="local", show_default=True,
              help="Validate for the local engine, or for Katib on a cluster (which has more features).")
@click.option("--katib-config", "katib_config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="With --engine katib: Katib's configuration (a KatibConfig document or the katib-config "
                   "ConfigMap) that maps algorithms to suggestion services. Default: the cluster's ConfigMap "
                   "when experiment.engine is katib, else Katib's upstream default.")
def validate(file: Path, engine: str, katib_config_file: Path | None) -> Result:
    """Check a Katib Experiment spec (exit 2 when invalid) against Katib's own rules (its admission
    webhook and the suggestion service that runs the algorithm), every field name and value, and
    for the local engine whether it can honour it. Warnings (what Katib ignores) go to stderr."""
    from pyhelpers.commands._common import load_project_config
    from pyhelpers.errors import BadInput
    from pyhelpers.experiment import katib_config
    from pyhelpers.experiment.spec import load_spec

    if engine == "local":
        if katib_config_file is not None:
            raise BadInput("--katib-config applies to --engine katib (the local engine follows Katib's default "
                           "katib-config)")
        config = katib_config.UPSTREAM
    elif katib_config_file is not None or not _may_run_on_katib():
        config = katib_config.resolve(katib_config_file)  # no cluster to ask (and no pydantic import)
    else:
        config = katib_config.for_project(load_project_config(required=False), katib_config_file)
    spec = load_spec(file, engine=engine, katib_config=config)
    if engine == "local":
        from pyhelpers.experiment.template import missing_paths

        collector_path = spec.file_path if spec.collector == "File" else None
        for path in missing_paths(spec.spec, _image_paths(), collector_path):
            spec.warnings.append(f"the trial command names {path}, which will not exist on this machine: map the "
                                 "image path to a local folder (experiment.image_paths in mlops.yaml)")
    for warning in spec.warnings:
        print(f"warning: {file}: {warning}", file=sys.stderr)
    data = {"valid": True, "file": str(file), "engine": engine, "name": spec.name, "algorithm": spec.algorithm,
            "suggestionService": config.service(spec.algorithm), "katibConfig": config.source,
            "parameters": [p.name for p in spec.parameters], "maxTrialCount": spec.max_trials,
            "parallelTrialCount": spec.parallel, "warnings": spec.warnings}
    what = f"{len(spec.parameters)} parameters" if spec.nas is None else "neural architecture search"
    return Result(data, f"{file}: valid Experiment {spec.name} ({spec.algorithm} on Katib's "
                  f"{config.service(spec.algorithm)} service, {what})")


def _raw_experiment_section() -> tuple[Path, dict, dict] | None:
    """The project's mlops.yaml `experiment` section and its profile's overlay, read cheaply: loading
    mlops.yaml through its schema costs ~0.3 s of imports, which `validate` only pays when needed.
    None without an mlops.yaml; raises on anything unreadable (the full load reports it)."""
    import os

    from pyhelpers.yamlsrc import load_yaml_file

    root = click.get_current_context().find_root()
    path = root.meta.get("mlops.config_path") or os.environ.get("MLOPS_CONFIG")
    if not path:
        here = Path.cwd().resolve()
        path = next((folder / "mlops.yaml" for folder in (here, *here.parents) if (folder / "mlops.yaml").is_file()), None)
    if path is None:
        return None
    doc = load_yaml_file(path).data or {}
    profile = root.meta.get("mlops.profile") or os.environ.get("MLOPS_PROFILE") or doc.get("profile") or "local"
    overlay = ((doc.get("profiles") or {}).get(profile) or {}).get("experiment") or {}
    return Path(path), doc.get("experiment") or {}, overlay


def _may_run_on_katib() -> bool:
    """Whether the project's experiment.engine may be katib (cluster mode). Anything unclear answers
    True, and the full configuration decides."""
    try:
        found = _raw_experiment_section()
        if found is None:
            return False
        _, section, overlay = found
        engine = overlay.get("engine") or section.get("engine") or "local"
    except Exception:  # noqa: BLE001 - a broken mlops.yaml is reported by the full load
        return True
    return engine != "local"


def _image_paths() -> dict[str, Path]:
    """experiment.image_paths of the project (image path -> local folder), {} when unknown: only a
    warning depends on it."""
    try:
        found = _raw_experiment_section()
        if found is None:
            return {}
        path, section, overlay = found
        paths = overlay.get("image_paths") or section.get("image_paths") or {}
        return {str(k): (path.parent / str(v)).resolve() for k, v in paths.items()}
    except Exception:  # noqa: BLE001 - a broken mlops.yaml is reported by the commands that load it
        return {}


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
    from pyhelpers.commands._common import project_locked

    with project_locked(cfg):  # one writer per project (pyhelpers/lock.py)
        doc, exit_code = run_local(cfg, spec, image_paths, name=name, live=sys.stderr.isatty())
    return Result(doc, summary(doc), exit_code)


# -- Katib on Kubernetes (experiment.namespace; the current kubeconfig or the in-cluster account) ----
def _cluster_name(cfg, file: Path | None, name: str | None, data_version: str | None) -> str:
    from pyhelpers.experiment.katib import resolve_name

    return resolve_name(cfg, file, name, data_version)[0]


_name_option = click.option("--name", help="Experiment name (default: metadata.name + the data version of HEAD).")
_file_option = click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
                            help="Experiment file (default: experiment.file of mlops.yaml).")
_dv_option = click.option("--data-version", help="Data version the Experiment is for (default: that of HEAD).")


@leaf(cli, "submit")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@_name_option
@_dv_option
@click.option("--image", help="Training image of the trials (default: image.name:<data version>-<commit[:8]>, "
              "the tag mlopsImage pushes).")
@click.option("--dry-run", is_flag=True, help="Print the Experiment and the first Trial's run spec as Katib "
              "would create them (run spec checked against the Kubernetes schema); send nothing.")
def submit(file: Path | None, name: str | None, data_version: str | None, image: str | None, dry_run: bool) -> Result:
    """Create the Experiment FILE on Katib, named after the data version (an existing one is reused).

    Its trials run the training image of this data version and commit and pull exactly this data
    in an init container (docs/cluster.md).
    """
    from pyhelpers.commands._common import load_project_config
    from pyhelpers.experiment import katib, katib_config
    from pyhelpers.experiment.spec import load_spec

    cfg = load_project_config()
    path = file or cfg.experiment_file
    # Katib's own features pass, under the cluster's own algorithm -> suggestion service mapping
    # (its katib-config ConfigMap when readable); typos and bad values never reach it
    spec = load_spec(path, engine="katib", katib_config=katib_config.for_project(cfg))
    name, data_version, commit = katib.resolve_name(cfg, path, name, data_version, spec=spec)
    if dry_run:
        data = katib.dry_run(cfg, spec, name, data_version, commit, image)
        schema = data["schema"]
        checked = (f"valid {data['trial']['runSpec']['kind']} (Kubernetes {schema['kubernetes']})" if schema["validated"]
                   else f"not schema-checked: {schema['reason']}")
        human = (f"# Experiment (not submitted)\n{_yaml(data['experiment'])}---\n"
                 f"# first Trial {data['trial']['name']}: run spec, {checked}\n{_yaml(data['trial']['runSpec'])}")
        return Result(data, human)
    data = katib.submit(cfg, spec, name, data_version, commit, image)
    verb = "created" if data["created"] else f"already exists ({data['phase']})"
    return Result(data, f"Experiment {data['namespace']}/{name} {verb} (image {data['image']})")


def _yaml(doc: dict) -> str:
    """YAML as kubectl users read it: multi-line strings (the data init script) as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value: str):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(doc, Dumper=Dumper, sort_keys=False, width=4096)


def _best_human(data: dict, doc: dict) -> str:
    from pyhelpers.experiment.runner import summary

    lines = [summary(doc)]
    if data["phase"] == "Failed":
        lines.append(f"  failed: {data['reason']}: {data['message']}")
    for t in data["failed_trials"]:
        lines.append(f"  {t['condition'].lower()} trial {t['name']}: {t['message']}")
    lines.append(f"  status document: {data['status_file']}")
    return "\n".join(lines)


@leaf(cli, "wait")
@_name_option
@_file_option
@_dv_option
@click.option("--timeout-minutes", type=click.FloatRange(min=0, min_open=True),
              help="Give up after this long (default: experiment.timeout_minutes).")
def wait(name: str | None, file: Path | None, data_version: str | None, timeout_minutes: float | None) -> Result:
    """Watch a Katib Experiment until Succeeded or Failed; write its status document.

    Exit 0 when it Succeeded with a best trial, 1 when it Failed, no trial succeeded or the
    timeout passed (the Experiment keeps running), 2 when there is no such Experiment.
    """
    from pyhelpers.commands._common import load_project_config
    from pyhelpers.experiment import katib

    cfg = load_project_config()
    name = _cluster_name(cfg, file, name, data_version)
    minutes = timeout_minutes or cfg.experiment.timeout_minutes
    data, doc = katib.wait(cfg, name, minutes * 60)
    return Result(data, _best_human(data, doc), data["exit_code"])


@leaf(cli, "best")
@_name_option
@_file_option
@_dv_option
def best(name: str | None, file: Path | None, data_version: str | None) -> Result:
    """Write a Katib Experiment's status document (as the local engine's) and show its best trial."""
    from pyhelpers.commands._common import load_project_config
    from pyhelpers.experiment import katib

    cfg = load_project_config()
    data, doc = katib.best(cfg, _cluster_name(cfg, file, name, data_version))
    return Result(data, _best_human(data, doc), data["exit_code"])


@leaf(cli, "delete")
@_name_option
@_file_option
@_dv_option
def delete(name: str | None, file: Path | None, data_version: str | None) -> Result:
    """Delete a Katib Experiment (and, through Katib's owner references, its Trials)."""
    from pyhelpers.commands._common import load_project_config
    from pyhelpers.experiment import katib

    cfg = load_project_config()
    data = katib.delete(cfg, _cluster_name(cfg, file, name, data_version))
    return Result(data, f"Experiment {data['namespace']}/{data['name']}: "
                  f"{'deleted' if data['deleted'] else 'not found (nothing to delete)'}")


@leaf(cli, "logs")
@click.argument("trial")
@click.option("--container", help="Container (default: Katib's StdOut collector sidecar, else the primary container).")
def logs(trial: str, container: str | None) -> Result:
    """Print the output of Katib trial TRIAL (from its pod)."""
    from pyhelpers.commands._common import load_project_config
    from pyhelpers.experiment import katib

    data = katib.logs(load_project_config(), trial, container)
    return Result(data, data["log"])


@leaf(cli, "report")
@click.argument("name", required=False, metavar="[NAME|FILE]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md and trials.png (default: next to the status document).")
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True,
              help="How many trials the table lists.")
def report(name: str | None, out_dir: Path | None, top: int) -> Result:
    """Markdown summary and PNG plot of an Experiment's trials (for pull requests and Slack).

    NAME is the Experiment's name, its Katib YAML file or an experiment.json (default: the
    Experiment run last here, else experiment.file of mlops.yaml). Writes report.md and trials.png.
    """
    from pyhelpers.experiment.report import build_report

    out = build_report(config_or_default(), name, out_dir, top)
    return Result(out, f"{out['summary']}\n  {out['markdown']}\n  {out['plot']}")
