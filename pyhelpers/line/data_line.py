"""Line 1: new data -> hyperparameter Experiment -> notification.

detect a data change against the last processed data version -> make sure the workspace holds
exactly the committed data -> push it to the DVC remote -> run the Experiment (named after the
data version) -> notify -> record the data version as processed. Unchanged data is a no-op.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pyhelpers import data, notify, scm
from pyhelpers.errors import BadInput, MlopsError
from pyhelpers.experiment import katib_config, mlflow_log
from pyhelpers.experiment import status as st
from pyhelpers.experiment.backends import backend_for
from pyhelpers.experiment.naming import experiment_name
from pyhelpers.experiment.spec import load_spec

__all__ = ["experiment_name", "run_data_line"]  # experiment_name lives in experiment.naming


def _log(message: str) -> None:
    print(f"[line data] {message}", file=sys.stderr, flush=True)


def run_data_line(cfg, force: bool = False, local: bool = True, live: bool = False,
                  image: str | None = None) -> tuple[dict[str, Any], int]:
    """``local``: the local engine whatever experiment.engine says; else experiment.engine decides.
    ``image``: the trials' training image on Katib (default: the one built for this data and commit)."""
    backend = backend_for(cfg, local=local, live=live, log=_log, image=image)
    # a bad spec stops the line before anything happens
    spec = load_spec(cfg.experiment_file, engine=backend.engine,
                     katib_config=katib_config.for_project(cfg) if backend.engine == "katib" else None)
    done = None if force else data.processed_head(cfg)  # the common no-op, decided without DVC
    if done:
        _log(f"data {done['data_version']} was already processed: nothing to do (use --force to rerun)")
        return {"line": "data", **done, "status": "unchanged"}, 0
    state = data.status(cfg)
    version, commit = state["data_version"], state["git_commit"]
    if commit is None:
        raise BadInput(f"{cfg.root} has no commit yet: commit the .dvc files first")
    result: dict[str, Any] = {"line": "data", "data_version": version, "git_commit": commit,
                              "processed_version": state["processed_version"]}
    if not state["changed"] and not force:
        _log(f"data {version} was already processed: nothing to do (use --force to rerun)")
        return {**result, "status": "unchanged"}, 0

    missing = [c for c in state["uncommitted_changes"] if c["change"] in ("deleted", "not in cache")]
    edited = [c for c in state["uncommitted_changes"] if c not in missing]
    if edited or state["workspace_data_version"] != version:
        paths = ", ".join(sorted({c["path"] for c in edited})) or ", ".join(data.dvc_files(cfg))
        raise BadInput(f"uncommitted data changes in {paths}: `dvc add` and commit them (or `dvc checkout`), "
                       "so the experiment runs on a data version that exists in git")
    if missing:
        _log("workspace lacks the tracked data: pulling it")
        data.pull(cfg)

    processed = data.load_processed(cfg)
    since = processed["git_commit"] if processed and scm.rev_exists(cfg.root, processed["git_commit"]) else None
    change = data.diff(cfg, since, "HEAD")
    _log(f"data {state['processed_version'] or '(none)'} -> {version}: {change['summary']['added']} added, "
         f"{change['summary']['modified']} modified, {change['summary']['deleted']} deleted")
    pushed = data.push(cfg)
    _log(f"data pushed to {pushed['remote']} ({pushed['pushed_files']} new file(s))")

    name = experiment_name(spec.name, version)
    if backend.engine == "local":
        _log(f"running experiment {name} ({spec.algorithm}, up to {spec.max_trials} trials, {spec.parallel} at a time)")
    doc, code = backend.run(spec, name, version, commit)
    result["mlflow"] = mlflow_log.log_experiment_quietly(cfg, doc)  # trials as child runs, dataset, report
    message = notify.experiment_message(doc, cfg.notify.link or os.environ.get("BUILD_URL"),
                                        notify.current_champion(cfg))
    try:
        delivery = notify.send(cfg, message, "experiment", attachment=result["mlflow"].get("plot"))
        notification = {"via": delivery["via"], "channel": delivery["channel"], "text": message["text"],
                        "delivered": delivery["delivered"], "note": delivery["note"],
                        "readable": notify.readable(message)}
        _log(f"notification {delivery['note']}")
    except MlopsError as exc:
        # the Experiment's outcome stands (and its data version is recorded): only the notice is missing
        notification = {"error": str(exc), "text": message["text"]}
        _log(f"warning: notification not delivered: {exc}")
    if code == 0:
        data.mark_processed(cfg, version, commit, experiment=name)
    result.update({
        "engine": backend.engine,
        "status": "completed" if code == 0 else "failed",
        "diff": {"summary": change["summary"], "files": change["files"], "bytes_added": change["bytes_added"]},
        "pushed_files": pushed["pushed_files"],
        "experiment": name,
        "phase": st.phase(doc),
        "best_trial": st.best_trial(doc),
        "status_file": str(st.experiment_dir(cfg.state, name) / st.STATUS_FILE),
        "notification": notification,
    })
    if backend.engine == "katib":  # what the trials ran: the image of this data version and commit
        result["image"] = ((doc.get("metadata") or {}).get("annotations") or {}).get("mlops.io/image")
    return result, code

