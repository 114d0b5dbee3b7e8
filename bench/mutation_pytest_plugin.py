"""pytest plugin for the mutmut runs of bench/mutation.py: keep the active mutant on for every test.

mutmut names the mutant under test in the MUTANT_UNDER_TEST environment variable, and
tests/conftest.py puts the process environment back to what it was at start-up after each test.
Without this, only the first test of a mutant's run would see the mutant, and most mutants would
"survive" tests that in fact catch them.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    from mutmut.mutation import trampoline

    active = trampoline._mutant_under_test  # set by mutmut in each worker before the tests run
    if active:
        os.environ["MUTANT_UNDER_TEST"] = active
