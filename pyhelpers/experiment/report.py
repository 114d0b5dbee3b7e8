"""``mlops experiment report``: a Markdown summary and a PNG plot of an Experiment's trials.

The material pull requests and Slack messages use: outcome, best trial, the top trials,
duration, data version; the plot shows the objective per trial and the best value so far.
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
    write_plot(rows, objective, plot, name)
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
    lines += [f"![{obj['metric']} per trial and best so far]({plot_name})", ""]
    return "\n".join(lines)


def write_plot(rows: list[dict], objective: dict, path: Path, title: str) -> None:
    """Objective per trial (failed trials marked on the axis) and the best value so far."""
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    minimize = objective["type"] != "maximize"
    xs = list(range(1, len(rows) + 1))
    values = [r["objective"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        ok = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if ok:
            ax.scatter([x for x, _ in ok], [v for _, v in ok], color="tab:blue", zorder=3, label="trial")
            ax.step(xs, [v if v is not None else math.nan for v in best_so_far(values, minimize)], where="post",
                    color="tab:orange", label="best so far")
        bad = [x for x, v in zip(xs, values, strict=True) if v is None]
        if bad:
            ax.scatter(bad, [0] * len(bad), marker="x", color="tab:red", transform=ax.get_xaxis_transform(),
                       clip_on=False, zorder=4, label="failed / no metric")
        if objective.get("goal") is not None:
            ax.axhline(objective["goal"], color="tab:green", linestyle="--", linewidth=1, label="goal")
        ax.set_xlabel("trial (in start order)")
        ax.set_ylabel(objective["metric"])
        ax.set_title(f"{title}: {objective['type']} {objective['metric']}")
        if xs:
            ax.set_xticks(xs if len(xs) <= 20 else xs[:: max(1, len(xs) // 20)])
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
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
