"""mlops jenkins seed"""

from __future__ import annotations

from pathlib import Path

import click

from pyhelpers.commands._common import Result, leaf


@click.group("jenkins")
def cli():
    """Seed Jenkins jobs (python-jenkins)."""


@leaf(cli, "seed")
@click.option("--url", required=True, help="Jenkins base URL, e.g. https://jenkins.example.com/")
@click.option("--projects", "projects_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML list of projects (default: jobs/projects.yaml of the library).")
@click.option("--job", default="mlops-seed", show_default=True, help="Name of the seed job.")
@click.option("--library", metavar="DIR", help="Checkout of the shared library (default: the one this package runs from).")
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds to wait for the seed build.")
@click.option("--dry-run", is_flag=True, help="Report whether the seed job would be created or updated; change nothing.")
def seed(url, projects_file, job, library, timeout, dry_run) -> Result:
    """Create or update the seed job, run it and report the jobs it created.

    Credentials come from JENKINS_USER and JENKINS_TOKEN (an API token) in the environment only.
    """
    from pyhelpers.jenkins.seed import seed as do_seed

    out = do_seed(url, projects_file=projects_file, library=library, job=job, dry_run=dry_run, timeout=timeout)
    if dry_run:
        human = f"{out['job']}: {out['action']} (projects: {', '.join(out['projects'])}); nothing changed"
    else:
        items = out["items"]
        human = (f"{out['job']}: {out['action']}; build #{out['build']['number']} {out['build']['result']}\n"
                 f"  added: {', '.join(items.get('added', [])) or '-'}\n"
                 f"  existing: {', '.join(items.get('existing', [])) or '-'}")
    return Result(out, human)
