"""The two failure kinds of the CLI contract: exit 2 for bad input, exit 1 for a failed operation."""


class MlopsError(Exception):
    exit_code = 1


class BadInput(MlopsError):
    """The user gave something we cannot use (config, spec, argument). Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        where = source or ""
        if source and line:
            where = f"{source}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class OperationFailed(MlopsError):
    """The input was fine but the work failed (trial failed, server unreachable). Exit code 1."""

    exit_code = 1
