"""Running an Experiment with the local engine: where results go, exit codes, summaries."""

from __future__ import annotations

from pathlib import Path

from pyhelpers.experiment import status as st
from pyhelpers.experiment.naming import check_name
from pyhelpers.experiment.spec import ExperimentSpec
from pyhelpers.experiment.template import missing_paths, trial_command
from pyhelpers.fsutil import atomic_write_text

LATEST_FILE = "latest"  # name of the experiment run last, for commands that default to it


def latest_experiment(cfg) -> str:
    from pyhelpers.errors import BadInput

    path = cfg.state_path("experiments", LATEST_FILE)
    if not path.is_file():
        raise BadInput("no experiment has run here yet: run `mlops line data` (or give --name)")
    return path.read_text().strip()


def run_local(cfg, spec: ExperimentSpec, image_paths: dict[str, Path], name: str | None = None,
              annotations: dict[str, str] | None = None, live: bool = False) -> tuple[dict, int]:
    """Run ``spec``; (status document, exit code: 0 Succeeded with a best trial, else 1).

    The name (``--name``, else metadata.name) must be a valid Katib Experiment name: it becomes the
    folder ``<state>/experiments/<name>``, which is confined to the state folder (exit 2 otherwise).
    """
    from pyhelpers.experiment.engine import LiveReporter, LocalEngine, PlainReporter

    name = check_name(name, "--name") if name is not None else check_name(spec.name, "metadata.name")
    out_dir = st.experiment_dir(cfg.state, name)
    reporter = LiveReporter(spec.max_trials) if live else PlainReporter()
    collector_path = spec.file_path if spec.collector == "File" else None
    for path in missing_paths(spec.spec, image_paths, collector_path):
        reporter.note(f"warning: the trial command names {path}, which does not exist on this machine: map the "
                      "image path to a local folder (experiment.image_paths or --path-map IMAGE_PATH=DIR)")
    engine = LocalEngine(spec, out_dir, image_paths, name, annotations, reporter)
    doc = engine.run()
    atomic_write_text(cfg.state_path("experiments", LATEST_FILE), name + "\n")
    return doc, exit_code(doc)


def exit_code(doc: dict) -> int:
    """0 when the Experiment Succeeded with a best trial, else 1."""
    return 0 if st.phase(doc) == "Succeeded" and st.best_trial(doc) is not None else 1


def dry_run_plan(spec: ExperimentSpec, image_paths: dict[str, Path], name: str | None) -> dict:
    first = {}
    for p in spec.parameters:
        first[p.name] = p.values[0] if p.values else (str(int(p.min)) if p.type == "int" else repr(float(p.min)))
    name = name or spec.name
    argv, cwd, _ = trial_command(spec.spec, first, f"{name}-0001", image_paths, spec.spec_dir, spec.namespace)
    return {"name": name, "algorithm": spec.algorithm, "maxTrialCount": spec.max_trials,
            "parallelTrialCount": spec.parallel, "firstTrialCommand": argv, "workingDir": str(cwd),
            "objective": {"type": spec.objective_type, "metric": spec.objective_metric, "goal": spec.goal}}


def summary(doc: dict) -> str:
    """A human summary: outcome, counts and the best trial's metrics and parameters."""
    s = doc["status"]
    cond = next((c for c in reversed(s.get("conditions", [])) if c["status"] == "True"), {})
    lines = [f"Experiment {doc['metadata']['name']}: {cond.get('type', '?')} ({cond.get('reason', '')})",
             f"  trials: {s.get('trialsSucceeded', 0)} succeeded, {s.get('trialsFailed', 0)} failed, "
             f"{s.get('trialMetricsUnavailable', 0)} without metrics, {s.get('trialsKilled', 0)} killed"]
    best = st.best_trial(doc)
    if best is None:
        lines.append("  no trial succeeded: there is no best trial")
        return "\n".join(lines)
    lines.append(f"  best trial: {best['name']}")
    for m in best["metrics"].values():
        lines.append(f"    {m['name']}: {st.human_value(m['latest'])} (min {st.human_value(m['min'])}, "
                     f"max {st.human_value(m['max'])})")
    lines.append("  parameters:")
    for k, v in best["parameters"].items():
        lines.append(f"    {k} = {st.human_value(v)}")
    return "\n".join(lines)
