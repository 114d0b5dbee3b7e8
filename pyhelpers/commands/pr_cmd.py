"""mlops pr open"""

from __future__ import annotations

import click

from pyhelpers.commands._common import Result, leaf, load_project_config


@click.group("pr")
def cli():
    """Pull requests for data updates (GitHub, or a Markdown file in the local profile)."""


@leaf(cli, "open")
@click.option("--branch", help="Head branch of the pull request (default: $BRANCH_NAME or the checked-out branch).")
@click.option("--base", help="Base branch (default: github.base).")
@click.option("--since", help="Git revision the data diff starts from (default: the merge base with --base).")
@click.option("--experiment", help="Experiment whose report goes in the body (default: the one named after "
              "this data version, when it ran here).")
@click.option("--title", help="Title (default: 'Data update <data version>').")
def open_(branch, base, since, experiment, title) -> Result:
    """Open or update the pull request of a data update (never a duplicate).

    The body reports the DVC diff (files, sizes), the data version and the experiment. With
    GITHUB_TOKEN and github.repo it goes to GitHub; otherwise to .mlops/pull-requests/<branch>.md.
    """
    from pyhelpers.pr import open_pr

    data = open_pr(load_project_config(), branch, base, since, experiment, title)
    where = data.get("url") or data.get("file")
    return Result(data, f"pull request {data['action']}: {where}")
