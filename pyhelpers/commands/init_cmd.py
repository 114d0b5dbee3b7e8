"""mlops init: mlops.yaml and a Katib Experiment skeleton for an existing training script.

The skeleton is derived from the script itself: its numeric argparse options with defaults become
the search space (choices become categorical), and the ``name=value`` lines it prints (Katib's StdOut
metrics format) name the objective. Nothing is overwritten without --force.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click

from pyhelpers.commands._common import LeafCommand, Result
from pyhelpers.errors import BadInput

SKIPPED_OPTIONS = {"seed", "random-state", "random_seed", "random-seed", "verbose", "workers", "n-jobs", "epochs-log"}
MAX_PARAMETERS = 5
LOWER_IS_BETTER = ("loss", "rmse", "mse", "mae", "error", "mape", "perplexity")


def dns_name(text: str, limit: int = 40) -> str:
    """A Katib-acceptable name: ^[a-z]([-a-z0-9]*[a-z0-9])?, at most 40 characters."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:limit].rstrip("-")
    return name or "model"


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def script_options(source: str) -> list[dict]:
    """Long options declared with ``add_argument`` (name, type, default, choices), in order."""
    options = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"):
            continue
        flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        long = next((f for f in flags if f.startswith("--")), None)
        if not long:
            continue
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        kind = kw["type"].id if isinstance(kw.get("type"), ast.Name) else None
        options.append({"flag": long, "name": long[2:].replace("_", "-"), "type": kind,
                        "default": _literal(kw["default"]) if "default" in kw else None,
                        "choices": _literal(kw["choices"]) if "choices" in kw else None,
                        "line": node.lineno})
    return sorted(options, key=lambda o: o["line"])


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def search_space(options: list[dict]) -> list[dict]:
    """Katib parameters around each tunable option's default."""
    params = []
    for opt in options:
        name, default = opt["name"], opt["default"]
        if name in SKIPPED_OPTIONS or "seed" in name:
            continue
        if isinstance(opt["choices"], (list, tuple)) and len(opt["choices"]) > 1:
            params.append({"name": name, "parameterType": "categorical",
                           "feasibleSpace": {"list": [str(c) for c in opt["choices"]]}, "flag": opt["flag"]})
        elif opt["type"] == "float" and isinstance(default, (int, float)) and default > 0:
            low, high = default / 10, (1.0 if default <= 1 else default * 10)
            space = {"min": _fmt(low), "max": _fmt(high)}
            if high / low >= 100:
                space["distribution"] = "logUniform"
            params.append({"name": name, "parameterType": "double", "feasibleSpace": space, "flag": opt["flag"]})
        elif opt["type"] == "int" and isinstance(default, int) and default > 1:
            params.append({"name": name, "parameterType": "int", "flag": opt["flag"],
                           "feasibleSpace": {"min": str(max(1, default // 2)), "max": str(default * 2)}})
    return params[:MAX_PARAMETERS]


def printed_metrics(source: str) -> list[str]:
    """Metric names the script prints as ``name=value`` (f-strings such as f"val-loss={loss}")."""
    names = re.findall(r"""print\(\s*f?["']([A-Za-z][\w-]*)=\{""", source)
    return list(dict.fromkeys(n for n in names if n not in ("rows",)))


def objective(metrics: list[str]) -> tuple[str, str]:
    preferred = [m for m in metrics if re.search(r"(^|[-_])(val|validation|test|eval)", m)] or metrics
    name = preferred[0]
    kind = "minimize" if any(word in name.lower() for word in LOWER_IS_BETTER) else "maximize"
    return name, kind


def _camel(name: str) -> str:
    head, *rest = re.split(r"[-_]", name)
    return head + "".join(p.capitalize() for p in rest)


def experiment_yaml(name: str, script: str, params: list[dict], metric: str, kind: str,
                    others: list[str], image: str) -> str:
    import yaml

    spec = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": dns_name(f"{name}-tuning")},
        "spec": {
            "objective": {"type": kind, "objectiveMetricName": metric,
                          **({"additionalMetricNames": others} if others else {})},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 1,
            "maxTrialCount": 6,
            "maxFailedTrialCount": 2,
            "parameters": [{k: v for k, v in p.items() if k != "flag"} for p in params],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": _camel(p["name"]), "reference": p["name"]} for p in params],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{
                        "name": "training-container",
                        "image": image,
                        "command": ["python", f"/app/{script}",
                                    *[f"{p['flag']}=${{trialParameters.{_camel(p['name'])}}}" for p in params]],
                    }],
                    "restartPolicy": "Never",
                }}}},
            },
        },
    }
    header = (f"# Katib Experiment generated by `mlops init` from {script}: its options with defaults are the\n"
              "# search space, the metric it prints (name=value) the objective. Edit freely; check it with\n"
              "# `mlops experiment validate` (add `--engine katib` for a cluster).\n")
    return header + yaml.safe_dump(spec, sort_keys=False)


def config_yaml(name: str, data_paths: list[str], experiment_file: str, image: str) -> str:
    paths = ", ".join(data_paths)
    return f"""# mlops configuration written by `mlops init`. Without `profile`, everything runs on this machine with
# state under .mlops/ (git-ignored). Secrets never go here: see `mlops config show`.
project: {name}

data:
  paths: [{paths}]           # DVC-tracked (`dvc add {' '.join(data_paths)}`)

image:
  name: {image}

experiment:
  file: {experiment_file}
  image_paths:
    /app: .                     # the image's /app is this folder when trials run locally

mlflow:
  experiment: {name}
  registered_model: {name}
"""


@click.command("init", cls=LeafCommand)  # the shared input boundary of every command
@click.argument("script", required=False, metavar="[SCRIPT]")
@click.option("--name", help="Project name (default: this folder's name).")
@click.option("--data", "data_paths", multiple=True, metavar="PATH",
              help="DVC-tracked data folder (repeatable; default: data).")
@click.option("--metric", help="Objective metric the script prints as name=value (default: found in the script).")
@click.option("--goal", type=click.Choice(["minimize", "maximize"]), help="Objective type (default: from the name).")
@click.option("--force", is_flag=True, help="Overwrite mlops.yaml and the Experiment file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout.")
def cli(script, name, data_paths, metric, goal, force, as_json):
    """Create mlops.yaml and a Katib Experiment skeleton (katib/experiment.yaml) for a training script.

    SCRIPT is the existing training script (default: train.py). Run it in the project's root folder.
    """
    from pyhelpers.commands._common import emit

    result = init_project(Path.cwd(), script, name, list(data_paths), metric, goal, force)
    emit(result, as_json)


def init_project(root: Path, script: str | None, name: str | None, data_paths: list[str],
                 metric: str | None, goal: str | None, force: bool) -> Result:
    if script is None:
        if not (root / "train.py").is_file():
            raise BadInput(f"no training script given and no train.py in {root}: run `mlops init path/to/train.py`")
        script = "train.py"
    path = (root / script).resolve()
    if not path.is_file():
        raise BadInput(f"training script {script} not found in {root}: run `mlops init path/to/train.py`")
    try:
        rel = path.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise BadInput(f"training script {script} is outside {root}: run `mlops init` in the project folder") from None
    source = path.read_text(encoding="utf-8")
    try:
        options = script_options(source)
    except SyntaxError as exc:
        raise BadInput(f"cannot parse it: {exc.msg}", source=rel, line=exc.lineno) from None
    params = search_space(options)
    if not params:
        raise BadInput("no tunable option found (an argparse option with type=float/int and a default, or "
                       "choices); add one, e.g. `parser.add_argument('--learning-rate', type=float, "
                       "default=0.1)`", source=rel)
    metrics = printed_metrics(source)
    if metric is None:
        if not metrics:
            raise BadInput("no metric printed as name=value (Katib's StdOut format) found; print one, e.g. "
                           "`print(f\"validation-loss={loss}\")`, or pass --metric NAME", source=rel)
        metric, guessed = objective(metrics)
        goal = goal or guessed
    goal = goal or ("minimize" if any(w in metric.lower() for w in LOWER_IS_BETTER) else "maximize")
    project = dns_name(name or root.resolve().name)
    image = f"registry.example.com/ml/{project}-train:latest"
    experiment_file = "katib/experiment.yaml"
    others = [m for m in metrics if m != metric]
    files = {
        "mlops.yaml": config_yaml(project, data_paths or ["data"], experiment_file, image.rsplit(":", 1)[0]),
        experiment_file: experiment_yaml(project, rel, params, metric, goal, others, image),
    }
    existing = [f for f in files if (root / f).exists()]
    if existing and not force:
        raise BadInput(f"{existing[0]} already exists; keep it, or run `mlops init --force` to overwrite it")
    for rel_path, text in files.items():
        target = root / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    next_steps = _next_steps(root, data_paths or ["data"], experiment_file)
    data = {"project": project, "files": list(files), "script": rel, "objective": {"metric": metric, "type": goal},
            "parameters": [p["name"] for p in params], "next": next_steps}
    human = "\n".join([
        f"wrote mlops.yaml and {experiment_file} for {rel} (project {project})",
        f"  objective: {goal} {metric}; search space: {', '.join(p['name'] for p in params)}",
        "next:", *[f"  {step}" for step in next_steps],
    ])
    return Result(data, human)


def _next_steps(root: Path, data_paths: list[str], experiment_file: str) -> list[str]:
    steps = []
    has_git, has_dvc = (root / ".git").exists(), (root / ".dvc").is_dir()
    if not has_git and not has_dvc:
        steps.append("git init && dvc init")
    elif not has_dvc:
        steps.append("dvc init")
    tracked = " ".join(data_paths)
    dvc_files = " ".join(f"{p.rstrip('/')}.dvc" for p in data_paths)
    steps += [f"dvc add {tracked} && git add mlops.yaml {experiment_file} {dvc_files} .gitignore && git commit -m 'mlops'",
              f"mlops experiment validate {experiment_file}",
              "mlops line data --local",
              "mlops line deploy --local"]
    return steps
