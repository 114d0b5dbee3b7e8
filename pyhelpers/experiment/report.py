"""``mlops experiment report``: a Markdown summary and a PNG plot of an Experiment's trials.

The material pull requests and Slack messages use: outcome, best trial, the top trials,
duration, data version; the plot shows the objective per trial (the best one starred) and the best
value so far, with Optuna's parameter importances and parallel coordinates of the trials.
Both files are written next to the status document (or to ``out_dir``), atomically, and
contain no timestamps of their own, so an unchanged Experiment gives the same report.
"""

from __future__ import annotations

import math
import os
import tempfile
from datetime import datetime
from pathlib import Path

from pyhelpers.errors import BadInput
from pyhelpers.fsutil import atomic_write_text

MARKDOWN_FILE = "report.md"
PLOT_FILE = "trials.png"


def _number(raw) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def objective_of(doc: dict) -> dict:
    obj = (doc.get("spec") or {}).get("objective") or {}
    kind = obj.get("type") or "minimize"
    metric = obj.get("objectiveMetricName") or ""
    strategies = {s.get("name"): s.get("value") for s in obj.get("metricStrategies") or []}
    return {"type": kind, "metric": metric, "goal": _number(obj.get("goal")),
            "strategy": strategies.get(metric) or ("min" if kind == "minimize" else "max"),
            "additional": list(obj.get("additionalMetricNames") or [])}


def trial_rows(doc: dict, objective: dict) -> list[dict]:
    """Trials in the order they started, with the objective value Katib would use for each."""
    rows = []
    for trial in doc.get("trials") or []:
        metrics = {m.get("name"): m for m in (trial.get("observation") or {}).get("metrics") or []}
        obs = metrics.get(objective["metric"]) or {}
        value = _number(obs.get(objective["strategy"], obs.get("latest"))) if trial.get("condition") == "Succeeded" else None
        rows.append({
            "name": trial.get("name"),
            "condition": trial.get("condition"),
            "parameters": {a["name"]: a["value"] for a in trial.get("parameterAssignments") or []},
            "objective": value,
            "metrics": {name: _number(m.get("latest")) for name, m in metrics.items()},
            "startTime": trial.get("startTime"),
        })
    rows.sort(key=lambda r: (r["startTime"] or "", r["name"] or ""))
    return rows


def best_so_far(values: list[float | None], minimize: bool) -> list[float | None]:
    out, best = [], None
    for v in values:
        if v is not None and (best is None or (v < best if minimize else v > best)):
            best = v
        out.append(best)
    return out


def build_report(cfg, ref: str | None, out_dir: str | Path | None = None, top: int = 5) -> dict:
    from pyhelpers.experiment.status import best_trial, experiment_dir, load_status, phase
    from pyhelpers.model.train import experiment_name

    name = experiment_name(cfg, ref)
    doc = load_status(cfg, name)
    name = (doc.get("metadata") or {}).get("name") or name
    if out_dir is None:
        given = Path(name)
        out_dir = given.parent if given.suffix == ".json" and given.is_file() else experiment_dir(cfg.state, name)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput("--out: not a directory", source=str(out_dir))

    objective = objective_of(doc)
    minimize = objective["type"] != "maximize"
    rows = trial_rows(doc, objective)
    scored = sorted((r for r in rows if r["objective"] is not None), key=lambda r: r["objective"],
                    reverse=not minimize)
    status = doc.get("status") or {}
    state = phase(doc)
    condition = next((c for c in reversed(status.get("conditions") or []) if c.get("status") == "True"), {})
    start, end = _time(status.get("startTime")), _time(status.get("completionTime"))
    seconds = (end - start).total_seconds() if start and end else None
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    best = best_trial(doc)
    counts = {c: sum(1 for r in rows if r["condition"] == c)
              for c in ("Succeeded", "Failed", "MetricsUnavailable", "Killed", "Running")}

    data = {
        "name": name, "phase": state, "reason": condition.get("reason"), "objective": objective,
        "best_trial": None, "top_trials": scored[:top], "trials": len(rows), "counts": counts,
        "duration_seconds": seconds, "data_version": annotations.get("mlops.io/data-version"),
        "git_commit": annotations.get("mlops.io/git-commit"),
    }
    if best:
        value = (best["metrics"].get(objective["metric"]) or {})
        data["best_trial"] = {"name": best["name"], "parameters": best["parameters"],
                              "objective": _number(value.get(objective["strategy"], value.get("latest"))),
                              "metrics": {k: _number(m.get("latest")) for k, m in best["metrics"].items()}}
    data["summary"] = one_line(data)

    plot = out_dir / PLOT_FILE
    write_plot(rows, objective, plot, name, doc.get("spec") or {}, best["name"] if best else None,
               data["data_version"])
    markdown = out_dir / MARKDOWN_FILE
    atomic_write_text(markdown, render_markdown(data, PLOT_FILE))
    return {**data, "markdown": str(markdown), "plot": str(plot)}


def one_line(data: dict) -> str:
    """For Slack and commit messages."""
    obj, best = data["objective"], data["best_trial"]
    head = f"Experiment {data['name']} {data['phase']}"
    if best is None:
        return f"{head}: no trial succeeded ({data['trials']} trials)"
    return (f"{head}: best {obj['metric']} {best['objective']:.6g} ({best['name']}) over {data['trials']} trials "
            f"in {duration_text(data['duration_seconds'])}, data {data['data_version'] or 'unknown'}")


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|")


def render_markdown(data: dict, plot_name: str) -> str:
    obj, best, counts = data["objective"], data["best_trial"], data["counts"]
    lines = [
        f"## Experiment `{data['name']}`: {data['phase']}" + (f" ({data['reason']})" if data["reason"] else ""),
        "",
        f"- Objective: {obj['type']} `{obj['metric']}`" + (f" (goal {obj['goal']:g})" if obj["goal"] is not None else ""),
        f"- Trials: {data['trials']} ({counts['Succeeded']} succeeded, {counts['Failed']} failed, "
        f"{counts['MetricsUnavailable']} without metrics, {counts['Killed']} killed)",
        f"- Duration: {duration_text(data['duration_seconds'])}",
        f"- Data version: `{data['data_version'] or 'unknown'}`",
        f"- Git commit: `{(data['git_commit'] or 'unknown')[:12]}`",
        "",
    ]
    if best is None:
        lines += ["No trial succeeded: there is no best trial.", ""]
    else:
        others = ", ".join(f"{k} = {_fmt(v)}" for k, v in best["metrics"].items() if k != obj["metric"])
        lines += [f"### Best trial `{best['name']}`", "",
                  f"**{obj['metric']} = {_fmt(best['objective'])}**" + (f" ({others})" if others else ""), "",
                  "| parameter | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in best["parameters"].items()]
        lines.append("")
    if data["top_trials"]:
        params = list(data["top_trials"][0]["parameters"])
        lines += [f"### Top {len(data['top_trials'])} trials", "",
                  "| # | trial | " + " | ".join([obj["metric"], *params]) + " |",
                  "|---|---|" + "---|" * (len(params) + 1)]
        for i, row in enumerate(data["top_trials"], 1):
            cells = [str(i), f"`{row['name']}`", _fmt(row["objective"]), *(_fmt(row["parameters"].get(p)) for p in params)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"![{obj['metric']} per trial, best so far, parameter importances]({plot_name})", ""]
    return "\n".join(lines)


def _distributions(spec: dict) -> dict:
    """Optuna distributions of the Experiment's search space (Katib's feasibleSpace)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for p in spec.get("parameters") or []:
        space, kind, name = p.get("feasibleSpace") or {}, p.get("parameterType"), p.get("name")
        try:
            if kind == "double":
                out[name] = FloatDistribution(float(space["min"]), float(space["max"]),
                                              log=space.get("distribution") in ("logUniform", "logNormal"))
            elif kind == "int":
                step = int(space.get("step") or 1)
                low, high = int(space["min"]), int(space["max"])
                out[name] = IntDistribution(low, low + (high - low) // step * step, step=step)
            elif kind in ("categorical", "discrete"):
                out[name] = CategoricalDistribution([str(v) for v in space["list"]])
        except (KeyError, TypeError, ValueError):
            continue  # a parameter the plots cannot place is left out of them, not the report
    return out


def _value(raw: str, distribution):
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return str(raw)
    return int(float(raw)) if isinstance(distribution, IntDistribution) else float(raw)


def trials_study(spec: dict, rows: list[dict], objective: dict):
    """An in-memory Optuna study holding the trials that reported the objective (for Optuna's plots)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if objective["type"] == "maximize" else "minimize")
    distributions = _distributions(spec)
    for row in rows:
        if row["objective"] is None:
            continue
        params = {k: row["parameters"][k] for k in distributions if k in row["parameters"]}
        try:
            values = {k: _value(v, distributions[k]) for k, v in params.items()}
            study.add_trial(optuna.trial.create_trial(params=values, value=row["objective"],
                                                      distributions={k: distributions[k] for k in values}))
        except ValueError:
            continue  # a value outside the declared space (edited spec): left out of the plots
    return study


def _as_image(ax):
    """Pixels of the figure an Optuna matplotlib plot drew on (closed afterwards)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig = ax.figure
    fig.set_size_inches(6, 4)
    fig.tight_layout()
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def _optuna_panel(target, draw, empty_text: str) -> None:
    """Put one of Optuna's plots into ``target``; a plot Optuna cannot draw becomes a sentence."""
    import warnings

    target.set_axis_off()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
            target.imshow(_as_image(draw()), interpolation="antialiased")
    except Exception:  # noqa: BLE001 - e.g. too few trials for importances
        target.text(0.5, 0.5, empty_text, ha="center", va="center", wrap=True, fontsize=11)


def _history(ax, rows: list[dict], objective: dict, best_name: str | None) -> None:
    minimize = objective["type"] != "maximize"
    xs = list(range(1, len(rows) + 1))
    values = [r["objective"] for r in rows]
    ok = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
    if ok:
        ax.scatter([x for x, _ in ok], [v for _, v in ok], color="tab:blue", zorder=3, label="trial")
        ax.step(xs, [v if v is not None else math.nan for v in best_so_far(values, minimize)], where="post",
                color="tab:orange", label="best so far")
    best = next(((x, r) for x, r in zip(xs, rows, strict=True) if r["name"] == best_name and r["objective"] is not None),
                None)
    if best:
        x, row = best
        ax.scatter([x], [row["objective"]], marker="*", s=320, color="gold", edgecolor="black", zorder=5,
                   label=f"best: {row['name']}")
        ax.annotate(f"{row['objective']:.6g}", (x, row["objective"]), textcoords="offset points", xytext=(10, 8),
                    fontsize=10, fontweight="bold")
    bad = [x for x, v in zip(xs, values, strict=True) if v is None]
    if bad:
        ax.scatter(bad, [0] * len(bad), marker="x", color="tab:red", transform=ax.get_xaxis_transform(),
                   clip_on=False, zorder=4, label="failed / no metric")
    if objective.get("goal") is not None:
        ax.axhline(objective["goal"], color="tab:green", linestyle="--", linewidth=1, label="goal")
    ax.set_xlabel("trial (in start order)")
    ax.set_ylabel(objective["metric"])
    if xs:
        ax.set_xticks(xs if len(xs) <= 20 else xs[:: max(1, len(xs) // 20)])
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")


def write_plot(rows: list[dict], objective: dict, path: Path, title: str, spec: dict | None = None,
               best_name: str | None = None, data_version: str | None = None) -> None:
    """One PNG: objective per trial with the best one starred and the best so far; below it Optuna's
    parameter importances and parallel coordinates. When no trial reported the objective, a picture
    that says so, with what became of each trial."""
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    heading = f"{title}: {objective['type']} {objective['metric']} (data {data_version or 'unknown'})"
    scored = [r for r in rows if r["objective"] is not None]
    if not scored:
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        ax.set_axis_off()
        conditions = {}
        for r in rows:
            conditions[r["condition"]] = conditions.get(r["condition"], 0) + 1
        what = ", ".join(f"{n} {c}" for c, n in sorted(conditions.items())) or "no trials ran"
        ax.text(0.5, 0.62, f"No trial reported the objective {objective['metric']}", ha="center", va="center",
                fontsize=16, fontweight="bold", color="tab:red")
        ax.text(0.5, 0.42, f"{len(rows)} trials: {what}", ha="center", va="center", fontsize=12)
        ax.text(0.5, 0.25, "Look at the trial logs (trials/*.log) for the reason; the metric must be printed\n"
                           f"as {objective['metric']}=<value> (Katib's StdOut format).", ha="center", va="center",
                fontsize=10, color="dimgray")
        ax.set_title(heading)
    else:
        from optuna.importance import FanovaImportanceEvaluator
        from optuna.visualization import matplotlib as ovm

        study = trials_study(spec or {}, rows, objective)
        fig = plt.figure(figsize=(12, 8), dpi=100)
        grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.1])
        _history(fig.add_subplot(grid[0, :]), rows, objective, best_name)
        _optuna_panel(fig.add_subplot(grid[1, 0]),
                      lambda: ovm.plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0)),
                      "Parameter importances need at least two trials\nthat reported the objective")
        _optuna_panel(fig.add_subplot(grid[1, 1]), lambda: ovm.plot_parallel_coordinate(study),
                      "No parameter values to draw")
        fig.suptitle(heading)
    try:
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, format="png", metadata={"Software": None})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        plt.close(fig)
