"""Progress on stderr for long steps that report no counts of their own (a DVC transfer, a venv build).

On a terminal: a rich spinner with the elapsed time, gone when the step ends. Elsewhere (Jenkins
logs, --json consumers reading stdout): one plain line when the step starts, no spinner frames.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def activity(description: str) -> Iterator[None]:
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        print(description, file=sys.stderr, flush=True)
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        progress.add_task(description, total=None)
        yield
