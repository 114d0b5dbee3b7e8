"""Entry point of the ``mlops`` command.

Command groups are imported only when invoked, so ``mlops --help`` stays as quick as
``dvc --help``. Each group module exposes a click object named ``cli``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

import click

from pyhelpers import __version__
from pyhelpers.errors import BadInput, MlopsError

# group name -> (module, one-line help). Order here is the order in --help.
GROUPS: dict[str, tuple[str, str]] = {
    "init": ("pyhelpers.commands.init_cmd", "Create mlops.yaml and a Katib Experiment for a training script."),
    "config": ("pyhelpers.commands.config_cmd", "Validate and show the project's mlops.yaml."),
    "data": ("pyhelpers.commands.data_cmd", "DVC-tracked data: status, diff, version, push, pull."),
    "experiment": ("pyhelpers.commands.experiment_cmd", "Katib Experiments: validate, run locally, submit to Katib, report."),
    "notify": ("pyhelpers.commands.notify_cmd", "Notify people (Slack) about experiments and deployments."),
    "pr": ("pyhelpers.commands.pr_cmd", "Pull requests for data updates (GitHub, or a local file)."),
    "model": ("pyhelpers.commands.model_cmd", "MLflow models: train, register, gate, promote, rollback."),
    "deploy": ("pyhelpers.commands.deploy_cmd", "Seldon/KServe manifests, GitOps push, local serving and smoke tests."),
    "lineage": ("pyhelpers.commands.lineage_cmd", "Trace a deployed model back to its data version."),
    "jenkins": ("pyhelpers.commands.jenkins_cmd", "Seed Jenkins jobs (python-jenkins)."),
    "line": ("pyhelpers.commands.line_cmd", "Run an automation line end to end."),
    "ui": ("pyhelpers.commands.ui_cmd", "Open the MLflow UI on this project's store (127.0.0.1, free port)."),
}


class ParamsGroup(click.Group):
    """Applies the JSON parameter file (``--params-file``/``MLOPS_PARAMS_FILE``) to the leaf command.

    Jenkins steps pass values this way instead of interpolating them into shell strings.
    """

    def resolve_command(self, ctx, args):
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            ctx.fail(f"no such command {args[0]!r}{did_you_mean(args[0], self.list_commands(ctx))}")
        name, cmd, rest = super().resolve_command(ctx, args)
        if isinstance(cmd, click.Group) and not isinstance(cmd, ParamsGroup):
            cmd.__class__ = ParamsGroup  # every group passes the parameter file down to its leaf
        params = ctx.find_root().meta.get("mlops.params")
        if cmd is not None and params is not None and not isinstance(cmd, click.Group):
            known = {p.name for p in cmd.params if p.name}
            unknown = sorted(set(params) - known)
            if unknown:
                raise BadInput(
                    f"unknown parameter {unknown[0]!r} for `{ctx.command_path} {name}`; "
                    f"known: {', '.join(sorted(known))}",
                    source=ctx.find_root().meta.get("mlops.params_source"),
                )
            ctx.default_map = {name: params}
        return name, cmd, rest


def did_you_mean(word: str, choices: list[str]) -> str:
    """'; did you mean X?' for a mistyped command ('experiments', 'stats'), else ''."""
    import difflib

    close = difflib.get_close_matches(word, choices, n=2, cutoff=0.6)
    close += [c for c in choices if c not in close and (c.startswith(word) or word.startswith(c))][:1]
    return f"; did you mean {' or '.join(repr(c) for c in close[:2])}?" if close else ""


class LazyGroup(ParamsGroup):
    def list_commands(self, ctx):
        return list(GROUPS)

    def get_command(self, ctx, name):
        if name not in GROUPS:
            return None
        module = importlib.import_module(GROUPS[name][0])
        return module.cli

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in GROUPS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _load_params(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise BadInput("parameter file not found", source=path) from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"invalid JSON: {exc.msg}", source=path, line=exc.lineno) from None
    if not isinstance(doc, dict):
        raise BadInput("parameter file must hold a JSON object", source=path)
    return {str(k).replace("-", "_"): v for k, v in doc.items()}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlops")
@click.option("--config", "config_path", envvar="MLOPS_CONFIG", metavar="PATH",
              help="Project configuration (default: mlops.yaml here or in a parent folder).")
@click.option("--profile", envvar="MLOPS_PROFILE", help="Configuration profile (default: local).")
@click.option("--params-file", envvar="MLOPS_PARAMS_FILE", metavar="PATH",
              help="JSON object of option values for the command (used by the Jenkins steps).")
@click.option("--debug", is_flag=True, envvar="MLOPS_DEBUG", help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx, config_path, profile, params_file, debug):
    """MLOps level 2 helpers: data -> experiment -> model -> deployment.

    Every command prints a human summary, or with --json one JSON document on stdout
    (logs go to stderr). Exit codes: 0 success, 1 the operation failed, 2 bad input.
    """
    ctx.meta["mlops.config_path"] = config_path
    ctx.meta["mlops.profile"] = profile
    if params_file:
        ctx.meta["mlops.params"] = _load_params(params_file)
        ctx.meta["mlops.params_source"] = params_file


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_message(exc: click.ClickException) -> str:
    """A click error as one line: the command, the message, where the value came from, where help is."""
    text = _one_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return text
    root = ctx.find_root().meta
    param = getattr(exc, "param", None)
    if param is not None and param.name in (root.get("mlops.params") or {}):
        text += f" (from parameter file {root.get('mlops.params_source')})"
    return f"{ctx.command_path}: {text} (see `{ctx.command_path} --help`)"


def _tracking_refusal(exc: Exception) -> str | None:
    """For any MLflow call that did not say itself what failed: a refused login or permission of the
    tracking server, in the words of ``tracking.AUTH_REFUSALS``."""
    if "mlflow" not in type(exc).__module__:
        return None
    from pyhelpers.model.tracking import AUTH_REFUSALS, http_status

    refusal = AUTH_REFUSALS.get(http_status(exc))
    return f"MLflow: {refusal}" if refusal else None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("MLOPS_DEBUG", "") not in ("", "0", "false")
    try:
        cli.main(args=args, prog_name="mlops", standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:
        # bare `mlops` or `mlops data`: the help people asked for, not an error
        print(exc.ctx.get_help())
        code = 0
    except click.ClickException as exc:
        # one line, as every other error (click's own show() prints usage + hint + error on 4 lines)
        print(f"mlops: error: {_usage_message(exc)}", file=sys.stderr)
        code = 2 if exc.exit_code in (1, 2) else exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        print("mlops: interrupted", file=sys.stderr)
        code = 130
    except MlopsError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"mlops: error: {_one_line(exc)}", file=sys.stderr)
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
        if debug:
            import traceback

            traceback.print_exc()
        refusal = _tracking_refusal(exc)
        if refusal:
            print(f"mlops: error: {refusal}", file=sys.stderr)
        else:
            hint = "" if debug else " (run with --debug for the traceback)"
            print(f"mlops: error: {type(exc).__name__}: {_one_line(exc)}{hint}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.exit(code)
