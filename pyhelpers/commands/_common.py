"""Shared pieces of every leaf command: --json output, config loading, result printing."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click

from pyhelpers.errors import BadInput, MlopsError, OperationFailed


@dataclass
class Result:
    data: dict[str, Any]
    human: str = ""
    exit_code: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def log(message: str) -> None:
    """Human progress goes to stderr so stdout stays a clean JSON document."""
    print(message, file=sys.stderr, flush=True)


def load_project_config(required: bool = True):
    """The configuration selected by the root options (--config, --profile) or the environment."""
    from pyhelpers.config import load_config

    root = click.get_current_context().find_root()
    return load_config(root.meta.get("mlops.config_path"), root.meta.get("mlops.profile"), required=required)


@contextlib.contextmanager
def project_locked(cfg) -> Iterator[None]:
    """One writer per project: hold ``<state>/mlops.lock`` while this command changes the project
    (lines, experiment run, model train/register, deploy push). See pyhelpers/lock.py."""
    from pyhelpers.lock import project_lock

    ctx = click.get_current_context(silent=True)
    with project_lock(cfg.state, ctx.command_path if ctx else "mlops"):
        yield


def config_or_default():
    from pyhelpers.config import default_config

    return load_project_config(required=False) or default_config()


SCALARS = (str, int, float, bool)
BAD_PATH_ERRNOS = (errno.ENAMETOOLONG, errno.ELOOP)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_param_value(key: str, value: Any, many: bool, source: str | None) -> None:
    """A value from the parameter file (JSON) as the option expects it: never a Python repr of an object."""
    if value is None:
        return
    if many and isinstance(value, list):
        for item in value:
            _check_param_value(key, item, False, source)
        return
    if not isinstance(value, SCALARS):
        kind = {"dict": "a JSON object", "list": "a JSON list"}.get(type(value).__name__, type(value).__name__)
        raise BadInput(f"{key}: expected a single value (string, number or true/false), got {kind}", source=source)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{key}: expected a finite number, got {value}", source=source)
    if isinstance(value, str) and "\x00" in value:
        raise BadInput(f"{key}: contains a NUL character", source=source)


class LeafCommand(click.Command):
    """The input boundary of every leaf command's options, wherever they come from.

    Values from the parameter file (``MLOPS_PARAMS_FILE``, JSON) must be what the option takes: a
    JSON object or list where one value belongs is exit 2 naming the key (click would turn it into
    a Python repr such as "{'a': 1}" and pass it on). Numbers must be finite on the command line too.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        root = ctx.find_root()
        source = root.meta.get("mlops.params_source")
        params = root.meta.get("mlops.params")
        if params is not None and ctx.parent is root and ctx.default_map is None:
            # a command directly under `mlops` (lineage): the root resolves it before it has read the
            # parameter file, so the file is applied here, with the same unknown-key rule
            known = {p.name for p in self.params if p.name}
            unknown = sorted(set(params) - known)
            if unknown:
                raise BadInput(f"unknown parameter {unknown[0]!r} for `{ctx.command_path}`; "
                               f"known: {', '.join(sorted(known))}", source=source)
            ctx.default_map = params
        for param in self.params:
            if ctx.default_map and param.name in ctx.default_map:
                many = bool(getattr(param, "multiple", False)) or param.nargs != 1
                _check_param_value(param.name, ctx.default_map[param.name], many, source)
        try:
            rest = super().parse_args(ctx, args)
        except OSError as exc:  # click.Path stats the value: a name too long for the file system
            name = str(exc.filename or "")
            shown = name if len(name) <= 60 else name[:57] + "..."
            raise BadInput(f"{ctx.command_path}: {exc.strerror or exc}: {shown!r}") from None
        for name, value in ctx.params.items():
            values = value if isinstance(value, (tuple, list)) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                option = next((p.opts[0] for p in self.params if p.name == name and p.opts), name)
                raise BadInput(f"{ctx.command_path}: {option}: expected a finite number, got {value}")
        return rest

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command with the process-wide guarantees: SIGTERM unwinds like Ctrl-C, credentials
        never reach stdout/stderr, and a path no file system can hold or a full disk is one line."""
        _terminate_as_interrupt()
        _redact_output()
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno not in BAD_PATH_ERRNOS:
                full = _disk_full(exc)
                if full is None:
                    raise
                raise full from None
            # a path the user gave that no file system can hold: bad input, not a crash
            name = str(exc.filename or "")
            shown = name if len(name) <= 60 else name[:57] + "..."
            raise BadInput(f"{exc.strerror}: {shown!r}") from None
        except (MlopsError, click.exceptions.Exit, click.ClickException):
            raise
        except Exception as exc:
            full = _disk_full(exc)
            if full is None:
                raise
            raise full from None


def leaf(group: click.Group, name: str | None = None, **kwargs) -> Callable:
    """Register a leaf command that returns a ``Result``; adds --json and prints the result."""

    def decorator(fn: Callable[..., Result]) -> click.Command:
        @click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout.")
        @click.option("--debug", is_flag=True, hidden=True, expose_value=False, help="Show tracebacks on errors.")
        @functools.wraps(fn)
        def wrapper(as_json: bool, **params: Any):
            result = fn(**params)
            emit(result, as_json)
            if result.exit_code:
                sys.exit(result.exit_code)

        return group.command(name, cls=LeafCommand, **kwargs)(wrapper)

    return decorator


class RedactingStream:
    """stdout/stderr with every credential value of the environment replaced by ***.

    The last line of defence: error messages of libraries (a webhook client naming its URL, a
    server echoing the request path, a storage client quoting a key) are printed through here."""

    def __init__(self, stream, secrets: list[str]):
        self._stream = stream
        self._secrets = secrets

    def write(self, text):
        if isinstance(text, str):
            for value in self._secrets:
                if value in text:
                    text = text.replace(value, "***")
        self._stream.write(text)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _redact_output() -> None:
    from pyhelpers.redaction import secret_values

    secrets = secret_values()
    if not secrets:
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream, secrets))


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
SQLITE_FULL = ("database or disk is full", "disk I/O error")


def _disk_full(exc: BaseException) -> OperationFailed | None:
    """A full disk anywhere below us (MLflow's SQLite store, an artifact copy, skops writing a model)
    as one line saying so, instead of whatever the library made of it ("could not be serialized")."""
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            where = f" writing {seen.filename}" if seen.filename else ""
            return OperationFailed(f"out of disk space{where} ({seen.strerror}); free space and rerun")
        text = str(seen)
        if type(seen).__name__ == "OperationalError" and any(s in text for s in SQLITE_FULL):
            reason = next(s for s in SQLITE_FULL if s in text)
            return OperationFailed(f"the SQLite store cannot write ({reason}): is its disk full or read-only? "
                                   "free space and rerun")
        seen = seen.__cause__ or seen.__context__
    return None


def _terminate_as_interrupt() -> None:
    """SIGTERM (Jenkins' abort, `kill`, a container stop) unwinds like Ctrl-C: every `with` block and
    `finally` runs, so child processes are stopped, MLflow runs end as FAILED, temp folders and locks
    go. Python's default for SIGTERM ends the process on the spot and skips all of that. Parts with
    their own handling (the local engine) install theirs while they run and restore this one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def emit(result: Result, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.data, indent=2, default=str) + "\n")
    elif result.human:
        sys.stdout.write(result.human.rstrip("\n") + "\n")
    sys.stdout.flush()


def parse_key_values(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"{option}: expected KEY=VALUE, got {pair!r}")
        out[key] = value
    return out
