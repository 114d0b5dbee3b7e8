"""mlops config validate|show"""

from __future__ import annotations

import click

from pyhelpers.commands._common import Result, leaf, load_project_config


@click.group("config")
def cli():
    """Validate and show the project's mlops.yaml."""


PROFILE_HELP = "Profile to use (the same as `mlops --profile NAME config …`)."


def _select_profile(profile: str | None) -> None:
    """`mlops config show --profile cluster` reads naturally; it wins over the root option."""
    if profile:
        click.get_current_context().find_root().meta["mlops.profile"] = profile


@leaf(cli, "validate")
@click.option("--profile", metavar="NAME", help=PROFILE_HELP)
def validate(profile: str | None) -> Result:
    """Check mlops.yaml against the schema (exit 2 with file:line: field: message)."""
    _select_profile(profile)
    cfg = load_project_config()
    return Result(
        {"valid": True, "file": cfg.source, "project": cfg.project, "profile": cfg.profile},
        f"{cfg.source}: valid (project {cfg.project}, profile {cfg.profile})",
    )


@leaf(cli, "show")
@click.option("--profile", metavar="NAME", help=PROFILE_HELP)
def show(profile: str | None) -> Result:
    """Effective configuration: defaults resolved, profile applied, overrides and credentials explained.

    `components` says, per component (data, mlflow, gitops, experiment, argocd, slack, github), which
    endpoint it will use and why, and where its credentials are expected to come from.
    Credentials are reported as 'set' or 'not set', never shown.
    """
    import yaml

    from pyhelpers.config import CREDENTIALS, components, credentials_status

    _select_profile(profile)
    cfg = load_project_config()
    doc = cfg.to_public_dict()
    status = credentials_status()
    parts = components(cfg)
    data = {
        "file": cfg.source,
        "config": doc,
        "overrides": cfg.overrides,
        "credentials": {k: {"status": v, "used_for": CREDENTIALS[k]} for k, v in status.items()},
        "components": parts,
    }
    lines = [f"# {cfg.source} (profile {cfg.profile})", yaml.safe_dump(doc, sort_keys=False).rstrip()]
    if cfg.overrides:
        lines.append("# overridden from the environment:")
        lines += [f"#   {key} <- ${var}" for key, var in cfg.overrides.items()]
    lines.append("# credentials (from the environment only):")
    lines += [f"#   {k}: {v}" for k, v in status.items()]
    lines.append("# components: backend -> endpoint (source); credentials expected from")
    for name, part in parts.items():
        lines += _component_lines(name, part)
    return Result(data, "\n".join(lines))


def _component_lines(name: str, part: dict, indent: str = "#   ") -> list[str]:
    source = part.get("endpoint_source")
    shown = f" ({source})" if source and source != "none" else ""
    what = f"{part.get('backend')} {part['url']}" if part.get("url") else part.get("backend")
    lines = [f"{indent}{name}: {what} -> {part.get('endpoint') or '(none found)'}{shown}"]
    creds = part.get("credentials") or {}
    found = [f"{k} {v}" for k, v in {**creds.get("variables", {}), **creds.get("files", {})}.items()]
    lines.append(f"{indent}  credentials: {creds.get('expected_from')}" + (f" [{', '.join(found)}]" if found else ""))
    if creds.get("will_use"):
        lines.append(f"{indent}  will use: {creds['will_use']}")
    art = part.get("artifacts")
    if isinstance(art, dict):
        s3 = f"; S3 endpoint {art['endpoint']} ({art['endpoint_source']})" if art.get("endpoint") else ""
        lines += _component_lines("artifacts", {"backend": art.get("via"), "endpoint": f"{art.get('store')}{s3}",
                                                "credentials": art.get("credentials")}, indent + "  ")
    return lines
