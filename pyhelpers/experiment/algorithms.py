"""Katib ``algorithmName`` -> Optuna sampler, as Katib's own suggestion services map them.

Validation (names and settings) needs no Optuna; only ``make_sampler`` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Katib algorithms whose semantics the local engine cannot honour: rejected, never ignored.
UNSUPPORTED = {
    "hyperband": "needs Katib's resource-aware early stopping of trial budgets",
    "pbt": "needs checkpoint exchange between trials (population based training)",
    "darts": "is neural architecture search (nasConfig), not hyperparameter search",
    "enas": "is neural architecture search (nasConfig), not hyperparameter search",
}


def _int(v: str) -> int:
    return int(v)


def _positive_int(v: str) -> int:
    n = int(v)
    if n < 1:
        raise ValueError("must be >= 1")
    return n


def _positive_float(v: str) -> float:
    x = float(v)
    if not x > 0:
        raise ValueError("must be > 0")
    return x


def _fraction(v: str) -> float:
    x = float(v)
    if not 0 < x <= 1:
        raise ValueError("must be in (0, 1]")
    return x


def _bool(v: str) -> bool:
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise ValueError("must be true or false")


def _choice(*allowed: str) -> Callable[[str], str]:
    def check(v: str) -> str:
        if v not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return v

    return check


_TPE = {
    "random_state": ("seed", _int),
    "n_startup_trials": ("n_startup_trials", _positive_int),
    "n_ei_candidates": ("n_ei_candidates", _positive_int),
    "n_EI_candidates": ("n_ei_candidates", _positive_int),  # Katib's hyperopt spelling
    "prior_weight": ("prior_weight", _positive_float),
    "gamma": ("gamma", _fraction),  # hyperopt's fraction of "good" trials
}

# algorithmName -> {Katib setting -> (Optuna keyword, converter)}
SETTINGS: dict[str, dict[str, tuple[str, Callable[[str], Any]]]] = {
    "random": {"random_state": ("seed", _int)},
    "grid": {"random_state": ("seed", _int)},
    "tpe": _TPE,
    "multivariate-tpe": _TPE,
    "cmaes": {
        "random_state": ("seed", _int),
        "sigma": ("sigma0", _positive_float),
        # restart_strategy is not offered: Optuna >= 4.4 ignores it, and ignoring is not honouring.
    },
    "sobol": {"random_state": ("seed", _int), "scramble": ("scramble", _bool)},
    # Katib serves it with scikit-optimize's GP; locally it is Optuna's GPSampler (also a GP).
    "bayesianoptimization": {
        "random_state": ("seed", _int),
        "n_initial_points": ("n_startup_trials", _positive_int),
        "base_estimator": ("base_estimator", _choice("GP")),
    },
}

SUPPORTED = tuple(SETTINGS)


def check_algorithm(name: str) -> str | None:
    """An error message for an algorithm the local engine cannot run, else None."""
    if name in SETTINGS:
        return None
    if name in UNSUPPORTED:
        return (f"algorithm {name!r} is not supported by the local engine: it {UNSUPPORTED[name]}; "
                "submit this Experiment to Katib on a cluster instead")
    return f"unknown algorithm {name!r}; supported: {', '.join(SUPPORTED)}"


def convert_settings(name: str, settings: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(Optuna keyword arguments, errors by setting name) for an algorithm's algorithmSettings."""
    table = SETTINGS[name]
    kwargs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in settings.items():
        if key not in table:
            known = ", ".join(table) or "none"
            errors[key] = f"setting {key!r} is not supported for {name!r}; supported: {known}"
            continue
        keyword, convert = table[key]
        try:
            kwargs[keyword] = convert(str(value))
        except ValueError as exc:
            msg = str(exc) if str(exc).startswith("must") else "has the wrong type"
            errors[key] = f"setting {key!r}={value!r} {msg}"
    return kwargs, errors


def make_sampler(name: str, settings: dict[str, str], grid: dict[str, list] | None = None):
    """The Optuna sampler for a (validated) Katib algorithm."""
    import optuna

    kwargs, _ = convert_settings(name, settings)
    if name == "random":
        return optuna.samplers.RandomSampler(**kwargs)
    if name == "grid":

        class AskTellGridSampler(optuna.samplers.GridSampler):
            # GridSampler calls study.stop() on the last grid point, which raises outside
            # study.optimize(); the engine tracks grid exhaustion itself.
            def after_trial(self, study, trial, state, values):
                pass

        return AskTellGridSampler(grid or {}, **kwargs)
    if name in ("tpe", "multivariate-tpe"):
        if "gamma" in kwargs:
            fraction = kwargs.pop("gamma")
            kwargs["gamma"] = lambda n: min(max(1, int(fraction * n + 0.999999)), 25)
        if name == "multivariate-tpe":
            kwargs["multivariate"] = True
        return optuna.samplers.TPESampler(**kwargs)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(**kwargs)
    if name == "sobol":
        return optuna.samplers.QMCSampler(qmc_type="sobol", **kwargs)
    if name == "bayesianoptimization":
        kwargs.pop("base_estimator", None)
        try:
            import torch  # noqa: F401  - GPSampler's dependency
        except ImportError:
            from pyhelpers.errors import BadInput

            raise BadInput(
                "algorithm 'bayesianoptimization' runs on Optuna's GPSampler, which needs torch: "
                "pip install 'mlops-pyhelpers[bayesopt]'"
            ) from None
        return optuna.samplers.GPSampler(**kwargs)
    raise ValueError(f"unsupported algorithm {name!r}")
