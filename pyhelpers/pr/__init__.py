"""Pull requests for data updates: a body reporting the DVC diff, the data version and the experiment.

With ``GITHUB_TOKEN`` and ``github.repo`` the body goes to a GitHub pull request (opened or
updated, never duplicated: see ``pr.github``); otherwise (the local profile) the same body is
written to ``<state>/pull-requests/<branch>.md``. The body holds no timestamps, so an unchanged
data update gives an unchanged pull request.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pyhelpers import scm
from pyhelpers.errors import BadInput
from pyhelpers.fsutil import atomic_write_text

MAX_FILE_ROWS = 50  # a PR body is capped at 65536 characters by GitHub


def current_branch(cfg, branch: str | None) -> str:
    """``--branch``, else Jenkins' BRANCH_NAME, else the checked-out branch."""
    branch = branch or os.environ.get("BRANCH_NAME")
    if branch:
        return branch
    proc = scm.git(cfg.root, "rev-parse", "--abbrev-ref", "HEAD", check=False)
    name = proc.stdout.strip()
    if proc.returncode != 0 or name in ("", "HEAD"):
        raise BadInput("cannot tell the branch (detached HEAD or no commit): give --branch")
    return name


def diff_base(cfg, base: str, since: str | None) -> str | None:
    """Where the data change starts: ``--since``, the merge base with the base branch, the last processed commit."""
    if since:
        if not scm.rev_exists(cfg.root, since):
            raise BadInput(f"--since: {since!r} is not a git revision here")
        return since
    for ref in (f"origin/{base}", base):
        if scm.rev_exists(cfg.root, ref):
            proc = scm.git(cfg.root, "merge-base", ref, "HEAD", check=False)
            if proc.returncode == 0 and proc.stdout.strip() != scm.head(cfg.root):
                return proc.stdout.strip()
    from pyhelpers import data

    processed = data.load_processed(cfg)
    if processed and processed.get("git_commit") and scm.rev_exists(cfg.root, processed["git_commit"]):
        return processed["git_commit"]
    return None  # nothing to compare with: every tracked file counts as added


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def diff_section(change: dict) -> list[str]:
    s = change["summary"]
    since = f"`{change['from'][:12]}`" if change["from"] else "nothing (first data version)"
    lines = [f"## Data update `{change['to_version']}`", "",
             f"- Data version: `{change['from_version'] or '(none)'}` → `{change['to_version']}`",
             f"- Since {since}: {s['added']} added, {s['modified']} modified, {s['deleted']} deleted"
             + (f", {s['renamed']} renamed" if s.get("renamed") else "")
             + f"; {human_size(change['bytes_added'])} added or changed", ""]
    if not change["files"]:
        return lines + ["No tracked data file changed.", ""]
    lines += ["| change | file | size | md5 |", "|---|---|---:|---|"]
    for row in change["files"][:MAX_FILE_ROWS]:
        md5 = (row.get("md5") or row.get("old_md5") or "")[:12]
        lines.append(f"| {row['change']} | `{row['path']}` | {human_size(row.get('size'))} | `{md5}` |")
    if len(change["files"]) > MAX_FILE_ROWS:
        lines.append(f"| … | and {len(change['files']) - MAX_FILE_ROWS} more files | | |")
    return lines + [""]


def experiment_section(cfg, name: str, plot_link: str | None) -> list[str]:
    """The model engineer's report when available (``experiment.report``), else a table from the status document."""
    try:
        from pyhelpers.experiment import report
    except ImportError:
        report = None
    if report is not None:
        data = report.build_report(cfg, name)
        text = report.render_markdown(data, plot_link or report.PLOT_FILE)
        if plot_link is None:  # a local PNG cannot be shown in a GitHub body
            text = "\n".join(line for line in text.splitlines() if not line.startswith("!["))
        return [text.rstrip(), ""]
    from pyhelpers.experiment import status as st

    doc = st.load_status(cfg, name)
    s = doc.get("status") or {}
    best = st.best_trial(doc)
    lines = [f"## Experiment `{name}`: {st.phase(doc)}", "",
             f"- Trials: {s.get('trials', 0)} ({s.get('trialsSucceeded', 0)} succeeded, {s.get('trialsFailed', 0)} failed)", ""]
    if best is None:
        return lines + ["No trial succeeded: there is no best trial.", ""]
    lines += [f"### Best trial `{best['name']}`", "", "| name | value |", "|---|---|"]
    lines += [f"| {m['name']} | {m.get('latest')} |" for m in best["metrics"].values()]
    lines += [f"| {k} | {v} |" for k, v in best["parameters"].items()]
    return lines + [""]


def default_experiment(cfg, data_version: str) -> str | None:
    """The Experiment named after this data version, when its status document exists here."""
    from pyhelpers.experiment import status as st
    from pyhelpers.experiment.naming import experiment_name

    try:
        from pyhelpers.experiment.spec import load_spec

        name = experiment_name(load_spec(cfg.experiment_file).name, data_version)
    except BadInput:
        return None
    return name if (st.experiment_dir(cfg.state, name) / st.STATUS_FILE).is_file() else None


def build_body(cfg, change: dict, experiment: str | None, plot_link: str | None) -> str:
    lines = [f"<!-- mlops: data update {change['to_version']} -->", *diff_section(change)]
    if experiment:
        lines += experiment_section(cfg, experiment, plot_link)
    else:
        lines += ["No experiment has run on this data version yet.", ""]
    lines.append("<sub>Written by `mlops pr open`.</sub>")
    return "\n".join(lines) + "\n"


def local_path(cfg, branch: str) -> Path:
    return cfg.state_path("pull-requests", re.sub(r"[^A-Za-z0-9._-]+", "-", branch).strip("-") + ".md")


def open_pr(cfg, branch: str | None, base: str | None, since: str | None, experiment: str | None,
            title: str | None) -> dict[str, Any]:
    from pyhelpers import data

    if scm.head(cfg.root) is None:
        raise BadInput(f"{cfg.root} has no commit yet: commit the .dvc files first")
    branch = current_branch(cfg, branch)
    base = base or cfg.github.base
    if branch == base:
        # GitHub refuses it too (422 "No commits between"); a data PR needs its own branch
        raise BadInput(f"pull request head and base are both {branch!r}: a data update is proposed from its own "
                       f"branch; run `git switch -c data/<name>` and commit the .dvc files there, or pass "
                       f"--branch/--base (github.base)")
    change = data.diff(cfg, diff_base(cfg, base, since), "HEAD")
    version = change["to_version"]
    experiment = experiment or default_experiment(cfg, version)
    title = title or f"Data update {version}"
    token = os.environ.get("GITHUB_TOKEN")
    result: dict[str, Any] = {"branch": branch, "base": base, "data_version": version, "title": title,
                              "experiment": experiment, "summary": change["summary"]}
    if token and cfg.github.repo:
        from pyhelpers.pr import github

        body = build_body(cfg, change, experiment, None)
        result.update(github.open_or_update(cfg.github.api_url, token, cfg.github.repo, branch, base, title, body,
                                            cfg.source), via="github", repo=cfg.github.repo)
        return result
    path = local_path(cfg, branch)
    plot = None
    if experiment:
        from pyhelpers.experiment import status as st

        plot = os.path.relpath(st.experiment_dir(cfg.state, experiment) / "trials.png", path.parent)
    body = build_body(cfg, change, experiment, plot)
    unchanged = path.is_file() and path.read_text(encoding="utf-8") == f"# {title}\n\n{body}"
    if not unchanged:
        atomic_write_text(path, f"# {title}\n\n{body}")
    why = "no GITHUB_TOKEN" if not token else "no github.repo"
    result.update(via="file", file=str(path), action="unchanged" if unchanged else "written", reason=why)
    return result
