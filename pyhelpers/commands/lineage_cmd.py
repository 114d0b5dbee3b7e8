"""mlops lineage [--manifest FILE] [--json]"""

from __future__ import annotations

import click

from pyhelpers.commands._common import Result, leaf, load_project_config


# A single command, not a group: `mlops lineage --json`. leaf() gives it the --json contract;
# the throw-away group only satisfies leaf's signature.
@leaf(click.Group(), "lineage")
@click.option("--manifest", metavar="FILE",
              help="Trace this SeldonDeployment or InferenceService file instead of the one in the GitOps repository.")
def cli(manifest: str | None) -> Result:
    """Trace the deployed model back to its data version: what data is it trained on?

    Reads the SeldonDeployment or InferenceService (deploy.target) at gitops.branch:gitops.path of
    the GitOps repository and follows its model name and version to the MLflow model version, its
    training run, the Experiment and its best trial, the data version and the git commit; each hop
    is cross-checked.
    """
    from pyhelpers.lineage import human, lineage

    doc = lineage(load_project_config(), manifest)
    return Result(doc, human(doc))
