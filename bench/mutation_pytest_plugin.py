"""pytest plugin for the mutmut runs of bench/mutation.py (loaded with ``-p``; never in `make test`).

1. Keep the active mutant on for every test. mutmut names the mutant under test in the
   MUTANT_UNDER_TEST environment variable, and tests/conftest.py puts the process environment back
   to what it was at start-up after each test. Without this, only the first test of a mutant's run
   would see the mutant, and most mutants would "survive" tests that in fact catch them.
2. Build the example git + DVC project (tests/conftest.py ``make_project``) once per mutation run,
   not once per mutant: each mutant runs in a new pytest session, whose session-scoped template
   would otherwise be rebuilt with a dozen `dvc`/`git` processes. Later sessions copy the first
   build, which is what the ``project`` fixture does with the template anyway.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CACHE = Path(os.getcwd()) / "project-templates"  # mutmut runs the tests inside <target>/mutants/


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    from mutmut.mutation import trampoline

    active = trampoline._mutant_under_test  # set by mutmut in each worker before the tests run
    if active:
        os.environ["MUTANT_UNDER_TEST"] = active


def pytest_configure(config) -> None:
    try:
        import tests.conftest as conftest
    except ImportError:
        return
    if getattr(conftest.make_project, "cached_for_mutation", False):
        return
    build = conftest.make_project

    def make_project(dest: Path, rows: int = 600, batches: int = 1, max_trials: int | None = None) -> Path:
        cached = CACHE / f"rows{rows}-batches{batches}-trials{max_trials}"
        if not cached.is_dir():
            built = build(dest, rows=rows, batches=batches, max_trials=max_trials)
            tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
            shutil.copytree(built, tmp, symlinks=True)
            tmp.rename(cached)  # whole or not at all, should two workers build at once
            return built
        shutil.copytree(cached, dest, symlinks=True)
        return dest

    make_project.cached_for_mutation = True  # type: ignore[attr-defined]
    conftest.make_project = make_project
