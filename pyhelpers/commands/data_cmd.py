"""mlops data status|diff|version|push|pull"""

from __future__ import annotations

import click

from pyhelpers.commands._common import Result, leaf, load_project_config, project_locked


@click.group("data")
def cli():
    """DVC-tracked data: versions, changes, push and pull."""


@leaf(cli, "status")
@click.option("--base", metavar="REV", help="Also compare HEAD's data with this revision (e.g. origin/main).")
def status(base: str | None) -> Result:
    """Data version of HEAD, uncommitted data changes (`dvc status`), and whether the line
    has processed this version yet (`changed`) or, with --base, whether it differs from the
    base branch (`changed_from_base`)."""
    from pyhelpers import data

    cfg = load_project_config()
    doc = data.status(cfg, base)
    lines = [f"data version: {doc['data_version']} (commit {str(doc['git_commit'])[:12]})",
             f"last processed: {doc['processed_version'] or 'never'}"
             + (" -> new data to process" if doc["changed"] else " (up to date)")]
    if base:
        lines.append(f"{base}: {doc['base_version'] or 'no tracked data'}"
                     + (" -> this branch changes the data" if doc["changed_from_base"] else " (same data)"))
    if doc["uncommitted_changes"]:
        lines.append("uncommitted data changes (run `dvc add` and commit):")
        lines += [f"  {c['change']}: {c['path']}" for c in doc["uncommitted_changes"]]
    return Result(doc, "\n".join(lines))


@leaf(cli, "version")
@click.option("--rev", default="HEAD", show_default=True, help="Git revision ('workspace' for uncommitted .dvc files).")
def version(rev: str) -> Result:
    """The data version id at a git revision (derived from the DVC hashes of the tracked data)."""
    from pyhelpers import data

    cfg = load_project_config()
    value = data.data_version(cfg, None if rev == "workspace" else rev)
    return Result({"data_version": value, "rev": rev}, value)


@leaf(cli, "diff")
@click.argument("a_rev", required=False)
@click.argument("b_rev", required=False)
@click.option("--since-processed", is_flag=True, help="Compare the last processed data with HEAD.")
def diff(a_rev: str | None, b_rev: str | None, since_processed: bool) -> Result:
    """Tracked files added/modified/deleted between A_REV (default HEAD~1) and B_REV (default HEAD).

    B_REV 'workspace' compares with the working tree. Sizes and md5s come from DVC.
    """
    from pyhelpers import data, scm
    from pyhelpers.errors import BadInput

    cfg = load_project_config()
    if since_processed:
        if a_rev:
            raise BadInput("--since-processed takes no A_REV")
        processed = data.load_processed(cfg)
        a_rev = processed["git_commit"] if processed else None
        if a_rev and not scm.rev_exists(cfg.root, a_rev):
            a_rev = None  # history rewritten since: treat everything as new
    elif a_rev is None:
        a_rev = "HEAD~1" if scm.rev_exists(cfg.root, "HEAD~1") else None
    b = None if b_rev == "workspace" else (b_rev or "HEAD")
    for rev in (a_rev, b):
        if rev and not scm.rev_exists(cfg.root, rev):
            raise BadInput(f"unknown git revision {rev!r}")
    doc = data.diff(cfg, a_rev, b)
    s = doc["summary"]
    lines = [f"data {doc['from_version'] or '(nothing)'} -> {doc['to_version']}: {s['added']} added, "
             f"{s['modified']} modified, {s['deleted']} deleted"]
    lines += [f"  {r['change']:<8} {r['path']}  {r['size'] if r['size'] is not None else '?'} bytes  {r['md5'] or ''}"
              for r in doc["files"]]
    return Result(doc, "\n".join(lines))


@leaf(cli, "push")
def push() -> Result:
    """Push the tracked data to the DVC remote (local profile: .mlops/dvc-remote)."""
    from pyhelpers import data

    cfg = load_project_config()
    with project_locked(cfg):
        doc = data.push(cfg)
    verb = f"pushed {doc['pushed_files']} file(s)" if doc["changed"] else "unchanged: remote already has the data"
    return Result(doc, f"{verb} ({doc['remote']})")


@leaf(cli, "pull")
def pull() -> Result:
    """Pull the tracked data from the DVC remote into the workspace."""
    from pyhelpers import data

    cfg = load_project_config()
    with project_locked(cfg):
        doc = data.pull(cfg)
    verb = (f"fetched {doc['fetched_files']} file(s), checked out {doc['checked_out_files']}" if doc["changed"]
            else "unchanged: workspace already up to date")
    return Result(doc, f"{verb} ({doc['remote']})")
