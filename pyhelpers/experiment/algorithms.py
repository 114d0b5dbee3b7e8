"""Katib ``algorithmName`` -> Optuna sampler, with the meaning of the suggestion service that
runs the algorithm under Katib's default katib-config (``katib_config.UPSTREAM``).

Settings are first validated by Katib's own rules (``katib_rules.ServiceRules``): the local engine
accepts exactly the settings a default Katib accepts, and refuses with one line (``local_problem``)
the few it cannot honour. Approximations, documented in docs/katib.md:

- random -> hyperopt's rand: ``RandomSampler(seed=random_state)``.
- tpe -> hyperopt's TPE: ``TPESampler`` with hyperopt's split (n_below = min(ceil(gamma * sqrt(n)),
  25), gamma 0.25 by default), ``prior_weight`` (1.0), ``n_EI_candidates`` (24), ``seed``. Katib's
  hyperopt service calls TPE with ``n_startup_jobs`` = the size of the request, so the first
  parallelTrialCount trials are random: ``n_startup_trials=parallel``. Hyperopt's Parzen
  estimators differ in detail from Optuna's (same model family, not the same numbers).
- grid -> optuna's GridSampler(seed). multivariate-tpe -> optuna's
  ``TPESampler(multivariate=True, constant_liar=True)`` with n_startup_trials / n_ei_candidates / seed.
- cmaes -> goptuna's CMA-ES: ``CmaEsSampler(sigma0=sigma, seed, n_startup_trials=0)``; restarts
  (ipop/bipop) are refused locally (Optuna >= 4.4 no longer restarts).
- sobol -> goptuna's unscrambled Sobol sequence: ``QMCSampler(qmc_type="sobol", scramble=False)``
  (goptuna reads no sobol setting; nor does the local engine).
- bayesianoptimization -> skopt's GP: Optuna's ``GPSampler`` (a GP with log expected improvement;
  ``n_initial_points`` -> ``n_startup_trials``, default 10 in both). RF/ET/GBRT estimators and
  acquisition settings other than EI are refused locally.

Validation needs no Optuna; only ``make_sampler`` imports it.
"""

from __future__ import annotations

import math

# Katib algorithms whose semantics the local engine cannot honour: rejected, never ignored.
UNSUPPORTED = {
    "hyperband": "needs Katib's resource-aware early stopping of trial budgets",
    "pbt": "needs checkpoint exchange between trials (population based training)",
    "darts": "is neural architecture search (nasConfig), not hyperparameter search",
    "enas": "is neural architecture search (nasConfig), not hyperparameter search",
}
SUPPORTED = ("random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization")
HYPEROPT_GAMMA = 0.25  # hyperopt.tpe default
HYPEROPT_LINEAR_FORGETTING = 25  # hyperopt.tpe: n_below never exceeds it


def check_algorithm(name: str) -> str | None:
    """An error message for an algorithm the local engine cannot run, else None."""
    if name in SUPPORTED:
        return None
    if name in UNSUPPORTED:
        return (f"algorithm {name!r} is not supported by the local engine: it {UNSUPPORTED[name]}; "
                "submit this Experiment to Katib on a cluster instead")
    return f"unknown algorithm {name!r}; supported: {', '.join(SUPPORTED)}"


def local_problem(name: str, settings: dict[str, str]) -> tuple[str | None, str] | None:
    """(setting or None, message) for what Katib accepts but the local engine cannot honour."""
    problem = check_algorithm(name)
    if problem:
        return None, problem
    if name == "cmaes" and settings.get("restart_strategy", "none") not in ("none", "None"):
        return "restart_strategy", (f"restart_strategy {settings['restart_strategy']!r} is not supported by the local "
                                    "engine (Optuna's CmaEsSampler no longer restarts); remove it or use Katib")
    if name == "bayesianoptimization":
        local_ok = {"base_estimator": ("GP",), "acq_func": ("EI",), "acq_optimizer": ("auto",)}
        for key, allowed in local_ok.items():
            if key in settings and settings[key] not in allowed:
                return key, (f"{key} {settings[key]!r} is not supported by the local engine, which runs a Gaussian "
                             f"process with expected improvement (Optuna's GPSampler); use {allowed[0]} or Katib")
    return None


def hyperopt_gamma(fraction: float):
    """hyperopt's split of good trials: n_below = min(ceil(gamma * sqrt(n)), 25)."""

    def gamma(n: int) -> int:
        return min(int(math.ceil(fraction * math.sqrt(n))), HYPEROPT_LINEAR_FORGETTING)

    return gamma


def sampler_kwargs(name: str, settings: dict[str, str], parallel: int = 1) -> dict:
    """Optuna keyword arguments for a (validated) Katib algorithm and its settings."""
    seed = int(settings["random_state"]) if "random_state" in settings else None
    if name in ("random", "grid"):
        return {"seed": seed}
    if name == "tpe":  # hyperopt
        return {"seed": seed, "n_startup_trials": max(1, parallel),
                "prior_weight": float(settings.get("prior_weight", 1.0)),
                "n_ei_candidates": int(settings.get("n_EI_candidates", 24)),
                "gamma": hyperopt_gamma(float(settings.get("gamma", HYPEROPT_GAMMA)))}
    if name == "multivariate-tpe":  # optuna
        kwargs = {"seed": seed, "multivariate": True, "constant_liar": True}
        if "n_startup_trials" in settings:
            kwargs["n_startup_trials"] = int(settings["n_startup_trials"])
        if "n_ei_candidates" in settings:
            kwargs["n_ei_candidates"] = int(settings["n_ei_candidates"])
        return kwargs
    if name == "cmaes":  # goptuna
        kwargs = {"seed": seed, "n_startup_trials": 0}
        if "sigma" in settings:
            kwargs["sigma0"] = float(settings["sigma"])
        return kwargs
    if name == "sobol":  # goptuna reads no setting
        return {"qmc_type": "sobol", "scramble": False}
    if name == "bayesianoptimization":  # skopt
        return {"seed": seed, "n_startup_trials": int(settings.get("n_initial_points", 10))}
    raise ValueError(f"unsupported algorithm {name!r}")


def make_sampler(name: str, settings: dict[str, str], grid: dict[str, list] | None = None, parallel: int = 1):
    """The Optuna sampler for a (validated) Katib algorithm."""
    import optuna

    kwargs = sampler_kwargs(name, settings, parallel)
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
        return optuna.samplers.TPESampler(**kwargs)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(**kwargs)
    if name == "sobol":
        return optuna.samplers.QMCSampler(**kwargs)
    if name == "bayesianoptimization":
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
