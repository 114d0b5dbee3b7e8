"""One seam for the engines that run an Experiment: the local engine and Katib on a cluster.

Both take the same validated Katib spec and give the same status document (docs/CONTRACTS.md), so
callers (the data line) never branch on the engine:

    backend = backend_for(cfg, local=True)
    spec = load_spec(cfg.experiment_file, engine=backend.engine)
    doc, exit_code = backend.run(spec, name, data_version, commit)

``run`` = ``submit`` + ``wait``. The local engine runs the Experiment to its end inside ``submit``
(there is no controller to hand it to), so its ``wait`` only reads the result back. The Katib backend
wraps ``experiment.katib`` without changing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pyhelpers.experiment import status as st


class ExperimentBackend(Protocol):
    engine: str  # "local" | "katib": also the spec validation profile (load_spec(engine=...))

    def submit(self, spec, name: str, data_version: str, commit: str | None) -> dict[str, Any]: ...

    def wait(self, name: str) -> tuple[dict, int]: ...

    def run(self, spec, name: str, data_version: str, commit: str | None) -> tuple[dict, int]: ...

    def best(self, name: str) -> dict | None: ...

    def status_document(self, name: str) -> dict: ...


def _annotations(data_version: str, commit: str | None) -> dict[str, str]:
    out = {"mlops.io/data-version": data_version}
    if commit:
        out["mlops.io/git-commit"] = commit
    return out


class LocalBackend:
    """The local engine (Optuna samplers, trials as processes); results under ``<state>/experiments/``."""

    engine = "local"

    def __init__(self, cfg, image_paths: dict[str, Path] | None = None, live: bool = False):
        self.cfg = cfg
        self.image_paths = cfg.image_path_map() if image_paths is None else image_paths
        self.live = live

    def submit(self, spec, name: str, data_version: str, commit: str | None) -> dict[str, Any]:
        from pyhelpers.experiment.runner import run_local

        doc, code = run_local(self.cfg, spec, self.image_paths, name=name,
                              annotations=_annotations(data_version, commit), live=self.live)
        return {"name": name, "phase": st.phase(doc), "exit_code": code}

    def wait(self, name: str) -> tuple[dict, int]:
        from pyhelpers.experiment.runner import exit_code

        doc = self.status_document(name)
        return doc, exit_code(doc)

    def run(self, spec, name: str, data_version: str, commit: str | None) -> tuple[dict, int]:
        self.submit(spec, name, data_version, commit)
        return self.wait(name)

    def best(self, name: str) -> dict | None:
        return st.best_trial(self.status_document(name))

    def status_document(self, name: str) -> dict:
        return st.load_status(self.cfg, name)


class KatibBackend:
    """Katib on Kubernetes (``experiment.namespace``), through ``pyhelpers.experiment.katib``."""

    engine = "katib"

    def __init__(self, cfg, timeout_seconds: float | None = None, log=None, image: str | None = None):
        self.cfg = cfg
        self.image = image  # the trials' training image (None: the one built for this data and commit)
        self.timeout_seconds = timeout_seconds or cfg.experiment.timeout_minutes * 60
        self.log = log or (lambda message: None)

    def submit(self, spec, name: str, data_version: str, commit: str | None) -> dict[str, Any]:
        from pyhelpers.experiment import katib

        submitted = katib.submit(self.cfg, spec, name, data_version, commit, self.image)
        self.log(f"experiment {submitted['namespace']}/{name} "
                 f"{'created' if submitted['created'] else 'already exists'} on Katib "
                 f"(image {submitted.get('image')}); waiting for it")
        return submitted

    def wait(self, name: str) -> tuple[dict, int]:
        from pyhelpers.experiment import katib

        data, doc = katib.wait(self.cfg, name, self.timeout_seconds)
        return doc, data["exit_code"]

    def run(self, spec, name: str, data_version: str, commit: str | None) -> tuple[dict, int]:
        self.submit(spec, name, data_version, commit)
        return self.wait(name)

    def best(self, name: str) -> dict | None:
        from pyhelpers.experiment import katib

        data, _ = katib.best(self.cfg, name)
        return data["best_trial"]

    def status_document(self, name: str) -> dict:
        from pyhelpers.experiment import katib

        _, doc = katib.best(self.cfg, name)  # writes it under <state>/experiments/<name>/ too
        return doc


def backend_for(cfg, local: bool = True, live: bool = False, log=None,
                image: str | None = None) -> LocalBackend | KatibBackend:
    """``local``: the local engine whatever experiment.engine says; else experiment.engine decides.
    ``image`` (the trials' training image) is for Katib only: the local engine runs the trial command."""
    from pyhelpers.errors import BadInput

    if not local and cfg.experiment.engine == "katib":
        return KatibBackend(cfg, log=log, image=image)
    if image:
        raise BadInput("--image is for Experiments on Katib (experiment.engine: katib, without --local)")
    return LocalBackend(cfg, live=live)
