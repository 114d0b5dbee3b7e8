"""The local Experiment engine: runs a Katib Experiment's trials as processes on this machine.

It follows Katib v1beta1's rules (pkg/controller.v1beta1/experiment/util/status_util.go and
experiment_controller.go): up to ``parallelTrialCount`` trials at once; stop when the goal is
reached (Succeeded, ExperimentGoalReached); when ``maxFailedTrialCount`` is set and the failed
trials (metrics unavailable included) are not zero and reach it (Failed, ExperimentFailed — so an
explicit 0 fails at the first failed trial and an absent one never); when completed trials reach
``maxTrialCount`` (Succeeded, ExperimentMaxTrialsReached); or when a grid is exhausted (Succeeded,
ExperimentSuggestionEndReached). Suggestions come from the Optuna sampler Katib's suggestion
service would use (see ``algorithms``).

What a rerun of the same Experiment does (its folder holds ``experiment.json``):
- the previous run did not finish (the engine was killed, even with SIGKILL, or interrupted): it
  continues. Completed trials are kept and replayed into a new Optuna study (``study.add_trial``),
  trials left Running or Killed are run again with the same assignments, leftovers of the dead engine
  are killed first (``engine.json`` holds its pid and process cookie; see ``supervise``).
- it finished: as on Katib, a finished Experiment is final unless it Succeeded by reaching
  maxTrialCount with ``resumePolicy`` LongRunning or FromVolume and maxTrialCount was raised — then
  the same study continues. An unchanged spec reports the finished result; any other edit is refused
  the way Katib's webhook refuses it (only the trial counts are editable).
The previous status document is replaced only once a new trial is running, always atomically, so a
spec that crashes the engine (or any other failure before that) leaves a finished result as it was.

Each trial runs in its own session with its own folder (``pods/<trial>/``, what a trial pod's
filesystem would be): the File collector's path is mapped into it, so a trial sees only what it
wrote and nothing from before the run.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyhelpers.errors import BadInput, OperationFailed
from pyhelpers.experiment import metrics as metrics_mod
from pyhelpers.experiment import status as st
from pyhelpers.experiment import supervise
from pyhelpers.experiment.algorithms import make_sampler
from pyhelpers.experiment.spec import ExperimentSpec
from pyhelpers.experiment.template import map_path, trial_command, trial_path_map
from pyhelpers.fsutil import atomic_write_json

KILL_GRACE_SECONDS = 5.0
SNAPSHOT_SECONDS = 0.5  # progress snapshots of the status file at most this often (final write always)
PIDFILE = "engine.json"
PODS = "pods"
STDERR_TAIL_LINES = 5
UNFINISHED_PHASES = ("Created", "Running", "Restarting")
EDITABLE = ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")  # Katib's webhook: nothing else
INTERRUPTED = "ExperimentInterrupted"


@dataclass
class Trial:
    name: str
    index: int  # the NNNN of <experiment>-NNNN
    assignments: dict[str, str]
    log: Path
    pod_dir: Path
    number: int | None = None  # Optuna trial number in this run's study (None: kept from an earlier run)
    argv: list[str] = field(default_factory=list)
    cwd: Path | None = None
    metrics_file: Path | None = None
    start: float = 0.0
    started_at: str = ""
    completed_at: str = ""
    process: subprocess.Popen | None = None
    exit_code: int | None = None
    condition: str = "Running"  # Succeeded | Failed | MetricsUnavailable | Killed
    message: str = ""
    observation: list[dict] = field(default_factory=list)
    objective: float | None = None
    killed: bool = False
    kill_message: str = ""
    stderr_tail: bytes = b""
    diagnosis: list[str] = field(default_factory=list)  # why it failed, for the terminal
    kept: dict | None = None  # the document of a trial kept from an earlier run
    pump: threading.Thread | None = None

    def document(self, state_dir: Path) -> dict:
        if self.kept is not None:
            return self.kept
        return {
            "name": self.name,
            "parameterAssignments": [{"name": k, "value": v} for k, v in self.assignments.items()],
            "condition": self.condition,
            "message": self.message,
            "observation": {"metrics": self.observation},
            "exitCode": self.exit_code,
            "startTime": self.started_at,
            "completionTime": self.completed_at,
            "log": str(self.log.relative_to(state_dir)),
        }

    def stderr_lines(self) -> list[str]:
        text = self.stderr_tail.decode("utf-8", errors="replace")
        return [line for line in text.splitlines() if line.strip()][-STDERR_TAIL_LINES:]


class Interrupted(Exception):
    pass


class LocalEngine:
    def __init__(
        self,
        spec: ExperimentSpec,
        out_dir: Path,
        image_paths: dict[str, Path] | None = None,
        name: str | None = None,
        annotations: dict[str, str] | None = None,
        reporter: Any = None,
    ):
        self.spec = spec
        self.name = name or spec.name
        self.out_dir = out_dir
        self.image_paths = image_paths or {}
        self.annotations = annotations or {}
        self.reporter = reporter or PlainReporter()
        self.formats = metrics_mod.compile_formats(spec.metrics_formats)
        self.trials: list[Trial] = []
        self.finished: queue.Queue = queue.Queue()
        self.minimize = spec.objective_type == "minimize"
        self.doc: dict = {}
        self.cookie = supervise.new_cookie()
        self.guardian: supervise.Guardian | None = None
        self._last_snapshot = 0.0
        self._written = False  # the status document on disk is still the previous one
        self._dirty = False  # a snapshot was held back by the rate limit
        self._stop = False
        self._next_index = 1
        self._lock_path: Path | None = None
        self._clean = False  # the final status is written: the guardian has nothing to mark

    # -- public ---------------------------------------------------------------------------
    def run(self) -> dict:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        distributions = self._distributions(optuna)  # bad bounds: exit 2 before anything is touched
        previous_handlers = self._install_signal_handlers()
        try:
            try:
                self._acquire()
                previous = self._previous_document()
                plan = self._plan(previous)
                if plan == "final":
                    self.reporter.final(previous)
                    self._clean = True
                    return previous
                study, grid_size = self._prepare(optuna, distributions, previous, plan)
                doc = self._loop(study, distributions, grid_size)
                self._clean = True
                return doc
            finally:
                self._release()
        finally:
            self.reporter.close()
            self._restore_signal_handlers(previous_handlers)

    # -- the run --------------------------------------------------------------------------
    def _loop(self, study, distributions: dict, grid_size: int | None) -> dict:
        status = self.doc["status"]
        outcome = self._check_completion(grid_size) if self.trials else None
        running: dict[str, Trial] = {}
        try:
            while True:
                while (outcome is None and not self._stop and len(running) < self.spec.parallel
                       and self._may_create(grid_size)):
                    trial = self._start(study.ask(distributions))
                    running[trial.name] = trial
                    self.reporter.started(trial, running)
                    self._update_status(durable=False, force=not self._written)
                if self._stop:
                    raise Interrupted()
                if not running:
                    break
                try:  # a snapshot held back by the rate limit is written once things go quiet
                    item = self.finished.get(timeout=SNAPSHOT_SECONDS) if self._dirty else self.finished.get()
                except queue.Empty:
                    self._update_status(durable=False, force=True)
                    continue
                if item is None:
                    raise Interrupted()
                trial = running.pop(item.name)
                try:
                    self._finish(trial, study)
                except Interrupted:
                    trial.condition = "Running"  # stopped while its log was read: it is run again on resume
                    running[trial.name] = trial
                    raise
                self.reporter.finished(trial, self._best(), running)
                if outcome is None:
                    outcome = self._check_completion(grid_size)
                    if outcome is not None and running:
                        self._kill_all(running, "Trial was stopped because the Experiment completed")
                self._update_status(durable=False)
        except Interrupted:
            self._kill_all(running, "Trial was stopped because the Experiment was interrupted")
            for trial in running.values():
                self._finish(trial, study)
            outcome = ("Failed", INTERRUPTED, "Experiment was interrupted (SIGINT/SIGTERM); trials were stopped; "
                                              "a rerun continues from the completed trials")
        except BaseException:
            self._kill_all(running, "Trial was stopped because the engine failed")  # no trial outlives the engine
            raise

        if outcome is None:  # nothing left to run without a stopping rule firing
            outcome = ("Succeeded", "ExperimentSuggestionEndReached",
                       "Experiment has succeeded because suggestion service has reached the end")
        kind, reason, message = outcome
        running_cond = next((c for c in status["conditions"] if c["type"] == "Running"), None)
        if running_cond is not None:  # as Katib: Running goes False and keeps its own reason
            st.set_condition(status, "Running", "False", running_cond["reason"], running_cond["message"])
        st.set_condition(status, kind, "True", reason, message)
        status["completionTime"] = st.now()
        self._update_status(durable=True, force=True)
        self.reporter.done(self.doc)
        return self.doc

    def _may_create(self, grid_size: int | None) -> bool:
        created = len(self.trials)
        if self.spec.max_trials is not None and created >= self.spec.max_trials:
            return False
        return grid_size is None or created < grid_size

    # -- trials ---------------------------------------------------------------------------
    def _start(self, optuna_trial) -> Trial:
        index = self._next_index
        self._next_index += 1
        name = f"{self.name}-{index:04d}"
        assignments = {p.name: _format_value(p, optuna_trial.params[p.name]) for p in self.spec.parameters}
        pod_dir = self.out_dir / PODS / name
        shutil.rmtree(pod_dir, ignore_errors=True)  # a trial's folder starts empty, as a new pod's volume
        try:
            pod_dir.mkdir(parents=True)
        except OSError as exc:
            raise OperationFailed(f"cannot write {pod_dir}: {exc.strerror or exc}") from None
        file_path = self.spec.file_path if self.spec.collector == "File" else None
        paths = trial_path_map(self.image_paths, file_path, pod_dir)
        argv, cwd, extra_env = trial_command(
            self.spec.spec, assignments, name, paths, self.spec.spec_dir, self.spec.namespace
        )
        log = self.out_dir / "trials" / f"{name}.log"
        trial = Trial(name, index, assignments, log, pod_dir, optuna_trial.number, argv, cwd)
        self.trials.append(trial)
        env = {**os.environ, **extra_env, "PYTHONUNBUFFERED": "1", "MLOPS_TRIAL_DIR": str(pod_dir),
               supervise.RUN_COOKIE: self.cookie, supervise.TRIAL_COOKIE: self._trial_cookie(trial)}
        if file_path:
            trial.metrics_file = Path(map_path(file_path, paths))
            if not trial.metrics_file.is_absolute():
                trial.metrics_file = pod_dir / trial.metrics_file
            try:
                trial.metrics_file.parent.mkdir(parents=True, exist_ok=True)  # the volume's mount point exists
            except OSError as exc:
                raise OperationFailed(f"cannot write {trial.metrics_file.parent}: {exc.strerror or exc}") from None
            env["MLOPS_METRICS_FILE"] = str(trial.metrics_file)
        # `python` inside a shell command should also be this interpreter's environment.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        trial.started_at = st.now()
        trial.start = time.monotonic()
        try:
            out = open(log, "wb")  # noqa: SIM115 - closed below, once the trial has its own copy
        except OSError as exc:
            raise OperationFailed(f"cannot write {log}: {exc.strerror or exc}") from None
        with out:
            try:
                trial.process = subprocess.Popen(
                    argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL, start_new_session=True,  # own session and group: killable as a whole
                )
            except OSError as exc:
                text = f"mlops: cannot start trial command {argv[0]!r}: {exc.strerror}\n".encode()
                out.write(text)
                trial.stderr_tail = text
                trial.exit_code = 127
                self.finished.put(trial)
                return trial
        trial.pump = threading.Thread(target=self._pump_stderr, args=(trial,), daemon=True)
        trial.pump.start()
        threading.Thread(target=self._wait, args=(trial,), daemon=True).start()
        return trial

    def _trial_cookie(self, trial: Trial) -> str:
        return f"{self.cookie}-{trial.name}"

    @staticmethod
    def _pump_stderr(trial: Trial) -> None:
        """Copy the trial's stderr into its log (the StdOut collector reads both, as Katib's does)
        and keep its last lines for the failure message."""
        source = trial.process.stderr.fileno()
        try:
            sink = os.open(trial.log, os.O_WRONLY | os.O_APPEND)
        except OSError:
            sink = None
        try:
            while True:
                try:
                    chunk = os.read(source, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                trial.stderr_tail = (trial.stderr_tail + chunk)[-8192:]
                if sink is not None:
                    try:
                        os.write(sink, chunk)
                    except OSError:  # a full disk: the engine's own write of the status will say so
                        pass
        finally:
            if sink is not None:
                os.close(sink)
            trial.process.stderr.close()  # here, not in _wait: no other thread reads a closed (reused) fd

    def _wait(self, trial: Trial) -> None:
        # Wait without reaping, so the pid (and its process group id) cannot be reused yet; then
        # kill what the trial left behind — its group and every process carrying its cookie, daemons
        # that setsid included — as a container's processes end with its main process.
        try:
            os.waitid(os.P_PID, trial.process.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        supervise.kill_group(trial.process.pid)
        supervise.kill_carriers(supervise.TRIAL_COOKIE, self._trial_cookie(trial))
        if trial.pump is not None:
            trial.pump.join(KILL_GRACE_SECONDS)
        trial.exit_code = trial.process.wait()
        self.finished.put(trial)

    def _finish(self, trial: Trial, study) -> None:
        import optuna

        if trial.condition != "Running" and not trial.killed:
            return
        trial.completed_at = trial.completed_at or st.now()
        names = self.spec.metric_names
        source = trial.metrics_file if trial.metrics_file is not None else trial.log
        # an interrupted run does not read the logs of the trials it stopped: it ends within seconds
        lines = self._lines(source) if source.is_file() and not (trial.killed and self._stop) else iter(())
        found = (metrics_mod.parse_json_lines(lines, names) if trial.metrics_file is not None
                 and self.spec.file_format == "JSON" else metrics_mod.parse_lines(lines, names, self.formats))
        trial.observation = [m.observation() for m in found.values()]
        objective = found.get(self.spec.objective_metric)
        if trial.killed:
            trial.condition, trial.message = "Killed", trial.kill_message
        elif trial.exit_code != 0:
            trial.condition, trial.message = "Failed", f"Trial command exited with code {trial.exit_code}"
            trial.diagnosis = self._failure_reason(trial)
        elif objective is None:
            trial.condition = "MetricsUnavailable"
            trial.message = f"Metric {self.spec.objective_metric!r} was not reported by the trial"
            trial.diagnosis = self._failure_reason(trial) + self._metrics_reason(trial)
        else:
            trial.condition, trial.message = "Succeeded", "Trial has succeeded"
            trial.objective = objective.value(self.spec.strategies[self.spec.objective_metric])
        if trial.number is None:
            return
        if trial.condition == "Succeeded":
            study.tell(trial.number, trial.objective)
        else:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def _lines(self, path: Path):
        """The file's lines; SIGTERM/SIGINT stops the reading of even a huge log (Interrupted)."""
        for line in metrics_mod.read_lines(path):
            if self._stop:
                raise Interrupted()
            yield line

    def _failure_reason(self, trial: Trial) -> list[str]:
        lines = [f"exit code {trial.exit_code}; log {trial.log}"]
        tail = trial.stderr_lines()
        if tail:
            lines.append("last lines of stderr:")
            lines.extend(f"  | {line[:300]}" for line in tail)
        elif trial.exit_code != 0:
            lines.append("nothing on stderr")
        return lines

    def _metrics_reason(self, trial: Trial) -> list[str]:
        metric = self.spec.objective_metric
        if trial.metrics_file is not None:
            where = f"{trial.metrics_file} (the trial's {self.spec.file_path})"
            if not trial.metrics_file.is_file():
                return [f"the File collector found no {where}: the trial must write it there (the path in its "
                        "command or args is mapped to it; it is also in $MLOPS_METRICS_FILE)"]
            tried = ("one JSON object per line with key " + repr(metric) if self.spec.file_format == "JSON"
                     else f"metricsFormat {metrics_mod.format_text(self.spec.metrics_formats)}")
            source = trial.metrics_file
        else:
            where = "the trial's output (StdOut collector)"
            tried = f"metricsFormat {metrics_mod.format_text(self.spec.metrics_formats)}"
            source = trial.log
        near = metrics_mod.nearest_line(self._lines(source), metric) if source.is_file() else None
        lines = [f"no value for {metric!r} in {where}; tried {tried}"]
        lines.append(f"nearest line: {near!r}" if near else "no line came close")
        return lines

    def _kill_all(self, running: dict[str, Trial], message: str) -> None:
        """Stop every running trial (SIGTERM to its group, SIGKILL after a grace period, then every
        process carrying its cookie); wait so no orphan survives."""
        for trial in running.values():
            trial.killed = True
            trial.kill_message = message
            if trial.process and trial.process.poll() is None:
                supervise.kill_group(trial.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        for trial in running.values():
            if trial.process:
                try:
                    trial.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    supervise.kill_group(trial.process.pid)
                    trial.process.wait()
                trial.exit_code = trial.process.returncode
            supervise.kill_carriers(supervise.TRIAL_COOKIE, self._trial_cookie(trial))
            trial.completed_at = st.now()
            trial.condition, trial.message = "Killed", message

    # -- experiment-level rules ---------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        counts = {"Succeeded": 0, "Failed": 0, "MetricsUnavailable": 0, "Killed": 0}
        for t in self.trials:
            if t.condition in counts:
                counts[t.condition] += 1
        return counts

    def _best(self) -> Trial | None:
        done = [t for t in self.trials if t.condition == "Succeeded" and t.objective is not None]
        if not done:
            return None
        pick = min if self.minimize else max  # the first of equal values, as Katib's strict comparison
        return pick(done, key=lambda t: t.objective)

    def _check_completion(self, grid_size: int | None) -> tuple[str, str, str] | None:
        best = self._best()
        goal = self.spec.goal
        if best is not None and goal is not None:
            reached = best.objective <= goal if self.minimize else best.objective >= goal
            if reached:
                return ("Succeeded", "ExperimentGoalReached", "Experiment has succeeded because Objective goal has reached")
        c = self._counts()
        failed = c["Failed"] + c["MetricsUnavailable"]
        limit = self.spec.max_failed
        if limit is not None and failed != 0 and failed >= limit:
            return ("Failed", "ExperimentFailed", "Experiment has failed because max failed count has reached")
        completed = sum(c.values())
        if self.spec.max_trials is not None and completed >= self.spec.max_trials:
            return ("Succeeded", "ExperimentMaxTrialsReached", "Experiment has succeeded because max trial count has reached")
        if grid_size is not None and completed >= grid_size:
            return ("Succeeded", "ExperimentSuggestionEndReached",
                    "Experiment has succeeded because suggestion service has reached the end")
        return None

    # -- resuming -----------------------------------------------------------------------------
    def _previous_document(self) -> dict | None:
        path = self.out_dir / st.STATUS_FILE
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("kind") != "Experiment":
                raise ValueError("not an Experiment status document")
            st.check_document(doc, str(path))
            if not isinstance(doc.get("trials") or [], list):
                raise ValueError("trials must be a list")
        except (OSError, ValueError, UnicodeDecodeError, BadInput) as exc:
            raise BadInput(f"cannot continue experiment {self.name}: its status document is unreadable ({exc}); "
                           f"move {self.out_dir} aside to start over", source=str(path)) from None
        return doc

    def _plan(self, previous: dict | None) -> str:
        """fresh | resume (the last run did not finish) | restart (Katib's resume) | final."""
        if previous is None:
            return "fresh"
        phase = st.phase(previous)
        reason = _true_condition(previous).get("reason", "")
        old_spec = previous.get("spec") or {}
        same_study = _comparable(old_spec) == _comparable(self.spec.spec)
        edited = not same_study or any(old_spec.get(k) != self.spec.spec.get(k) for k in EDITABLE)
        where = f"remove {self.out_dir} or run it under another --name"
        if phase in UNFINISHED_PHASES or reason in (INTERRUPTED, supervise.ENGINE_KILLED):
            if not same_study:
                raise BadInput(f"experiment {self.name} did not finish and its spec has changed: it can continue "
                               f"only with the same spec (Katib allows editing only spec.{', spec.'.join(EDITABLE)}); "
                               f"{where}", source=str(self.spec.source))
            return "resume"
        if not edited:
            return "final"
        policy = self.spec.resume_policy
        restartable = (phase == "Succeeded" and reason == "ExperimentMaxTrialsReached"
                       and policy in ("LongRunning", "FromVolume"))
        if not (restartable and same_study):
            # Katib's webhook refuses such an edit; the finished Experiment stays what it is, as
            # `experiment submit` reports an existing one.
            why = ("only the trial counts may change" if restartable else
                   "Katib restarts an Experiment only when it succeeded by reaching max trials and "
                   "spec.resumePolicy is LongRunning or FromVolume")
            self.reporter.note(f"warning: the spec of experiment {self.name} changed since it ran (resumePolicy "
                               f"{policy}); {why}: the finished result stands; {where}")
            return "final"
        trials = int((previous.get("status") or {}).get("trials") or len(previous.get("trials") or []))
        if self.spec.max_trials is not None and self.spec.max_trials <= trials:
            raise BadInput(f"spec.maxTrialCount: {self.spec.max_trials} must be greater than status.trials count "
                           f"({trials}) to restart experiment {self.name}", source=str(self.spec.source))
        return "restart"

    def _prepare(self, optuna, distributions: dict, previous: dict | None, plan: str):
        """The study (with earlier trials replayed), the status document, and the folders."""
        grid = self.spec.grid() if self.spec.algorithm == "grid" else None
        grid_size = self.spec.grid_size() if grid is not None else None
        kept_docs: list[dict] = []
        rerun_docs: list[dict] = []
        for doc in (previous or {}).get("trials") or []:
            done = doc.get("condition") in ("Succeeded", "Failed", "MetricsUnavailable")
            if plan == "restart" or done:
                kept_docs.append(doc)
            else:  # Running (the engine died) or Killed (it was interrupted): run again
                rerun_docs.append(doc)
        kept = [self._kept_trial(doc) for doc in kept_docs]
        # A grid that continues gets its remaining points queued: GridSampler numbers grid points by
        # trial number, which replayed trials would make repeat points.
        sampler = (optuna.samplers.RandomSampler() if grid is not None and kept
                   else make_sampler(self.spec.algorithm, self.spec.settings, grid, parallel=self.spec.parallel))
        study = optuna.create_study(direction=self.spec.objective_type, sampler=sampler)
        try:
            for trial in kept:
                params = {p.name: _parse_value(p, trial.assignments[p.name]) for p in self.spec.parameters}
                if trial.condition == "Succeeded" and trial.objective is not None:
                    frozen = optuna.trial.create_trial(params=params, distributions=distributions, value=trial.objective)
                else:
                    frozen = optuna.trial.create_trial(params=params, distributions=distributions,
                                                       state=optuna.trial.TrialState.FAIL)
                study.add_trial(frozen)
            if grid is not None and kept:
                seen = {tuple(sorted(t.assignments.items())) for t in kept}
                names = list(grid)
                params_by_name = {p.name: p for p in self.spec.parameters}
                for combo in itertools.product(*(grid[n] for n in names)):
                    point = {n: _format_value(params_by_name[n], v) for n, v in zip(names, combo, strict=True)}
                    if tuple(sorted(point.items())) not in seen:
                        study.enqueue_trial({n: _parse_value(params_by_name[n], point[n]) for n in names})
            elif grid is None:
                for doc in rerun_docs:
                    values = {a["name"]: a["value"] for a in doc.get("parameterAssignments") or []}
                    study.enqueue_trial({p.name: _parse_value(p, values[p.name]) for p in self.spec.parameters})
        except (KeyError, ValueError, TypeError) as exc:
            raise BadInput(f"the trials recorded for experiment {self.name} do not fit its spec ({exc}); "
                           f"remove {self.out_dir} to start over", source=str(self.spec.source)) from None
        self.trials = kept
        self._next_index = max((t.index for t in kept), default=0) + 1

        if plan in ("resume", "restart") and previous is not None:
            self.doc = previous
            self.doc["spec"] = self.spec.spec
            meta = self.doc.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **self.annotations}
            status = self.doc.setdefault("status", {})
            status["conditions"] = [c for c in status.get("conditions") or []
                                    if c.get("type") not in ("Succeeded", "Failed")]
            status.pop("completionTime", None)
            if plan == "restart":
                st.set_condition(status, "Restarting", "True", "ExperimentRestarting", "Experiment is restarted")
            st.set_condition(status, "Running", "True", "ExperimentRunning", "Experiment is running")
            self.reporter.resumed(self.name, plan, len(kept), len(rerun_docs))
        else:
            self.doc = self._initial_document()
            status = self.doc["status"]
            st.set_condition(status, "Created", "True", "ExperimentCreated", "Experiment is created")
            st.set_condition(status, "Running", "True", "ExperimentRunning", "Experiment is running")
        self._clean_folders(keep={t.name for t in kept})
        total = self.spec.max_trials if grid_size is None else min(grid_size, self.spec.max_trials or grid_size)
        self.reporter.begin(self.name, total, self._counts(), self._best())
        return study, grid_size

    def _kept_trial(self, doc: dict) -> Trial:
        name = str(doc.get("name"))
        try:
            index = int(name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            index = 0
        assignments = {a["name"]: str(a["value"]) for a in doc.get("parameterAssignments") or []}
        trial = Trial(name, index, assignments, self.out_dir / "trials" / f"{name}.log", self.out_dir / PODS / name)
        trial.condition = doc.get("condition", "Failed")
        trial.kept = doc
        strategy = self.spec.strategies[self.spec.objective_metric]
        for metric in (doc.get("observation") or {}).get("metrics") or []:
            if metric.get("name") == self.spec.objective_metric:
                trial.objective = metrics_mod._number(str(metric.get(strategy)))
        return trial

    def _clean_folders(self, keep: set[str]) -> None:
        """Logs and pod folders of trials that are not in the document go (they are run again)."""
        try:
            (self.out_dir / "trials").mkdir(parents=True, exist_ok=True)
            (self.out_dir / PODS).mkdir(parents=True, exist_ok=True)
            for log in (self.out_dir / "trials").iterdir():
                if log.suffix == ".log" and log.stem not in keep:
                    log.unlink()
            for pod in (self.out_dir / PODS).iterdir():
                if pod.name not in keep:
                    shutil.rmtree(pod, ignore_errors=True)
        except OSError as exc:
            raise OperationFailed(f"cannot write the results folder {self.out_dir}: {exc.strerror}") from None

    # -- the pidfile: one engine per Experiment, and the leftovers of a dead one -------------------
    def _acquire(self) -> None:
        path = self.out_dir / PIDFILE
        record = {"pid": os.getpid(), "start_ticks": supervise.start_ticks(os.getpid()), "cookie": self.cookie,
                  "started": st.now()}
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for _ in range(3):
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    self._clear_stale(path)
                    continue
                self._lock_path = path  # ours from here on: _release removes it
                with os.fdopen(fd, "w") as fh:
                    json.dump(record, fh)
                break
            else:
                raise OperationFailed(f"cannot take {path}: another engine keeps creating it")
        except OSError as exc:
            raise OperationFailed(f"cannot write {path}: {exc.strerror or exc}") from None
        self.guardian = supervise.Guardian(self.cookie, self.out_dir / st.STATUS_FILE)
        atomic_write_json(path, {**record, "guardian_pid": self.guardian.pid}, durable=False)

    def _clear_stale(self, path: Path) -> None:
        try:
            old = json.loads(path.read_text())
            pid, ticks, cookie = int(old["pid"]), old.get("start_ticks"), str(old["cookie"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # half-written by an engine killed at that moment
            return
        if supervise.is_same_process(pid, ticks):
            raise OperationFailed(f"experiment {self.name} is being run by another engine (pid {pid}, since "
                                  f"{old.get('started', '?')}); wait for it or stop it")
        guardian = old.get("guardian_pid")
        if isinstance(guardian, int):  # the dead engine's guardian may still be marking its status
            deadline = time.monotonic() + 10
            while supervise.start_ticks(guardian) is not None and time.monotonic() < deadline:
                time.sleep(0.05)
        killed = supervise.kill_carriers(supervise.RUN_COOKIE, cookie)
        if killed:
            self.reporter.note(f"killed {killed} leftover process(es) of the engine that ran {self.name} before "
                               f"(pid {pid}, gone)")
        path.unlink(missing_ok=True)

    def _release(self) -> None:
        supervise.kill_carriers(supervise.RUN_COOKIE, self.cookie)
        if self.guardian is not None:
            # only a status this engine wrote and did not finish is the guardian's to mark
            self.guardian.stop(clean=self._clean or not self._written)
        if self._lock_path is not None:
            self._lock_path.unlink(missing_ok=True)

    # -- documents --------------------------------------------------------------------------
    def _initial_document(self) -> dict:
        meta = dict(self.spec.doc.get("metadata") or {})
        meta.pop("generateName", None)
        meta["name"] = self.name
        meta["annotations"] = {**(meta.get("annotations") or {}), **self.annotations,
                               "mlops.io/spec-file": str(Path(self.spec.source).resolve())}
        return {
            "apiVersion": self.spec.doc["apiVersion"], "kind": "Experiment", "metadata": meta,
            "spec": self.spec.spec, "status": {"startTime": st.now(), "conditions": []}, "trials": [],
        }

    def _update_status(self, durable: bool, force: bool = False) -> None:
        # Rewriting the whole document after every trial is quadratic in the trial count.
        if not (durable or force) and time.monotonic() - self._last_snapshot < SNAPSHOT_SECONDS:
            self._dirty = True
            return
        self._last_snapshot = time.monotonic()
        self._dirty = False
        status = self.doc["status"]
        c = self._counts()
        by = lambda cond: [t.name for t in self.trials if t.condition == cond]  # noqa: E731
        status.update({
            "trials": len(self.trials),
            "trialsSucceeded": c["Succeeded"],
            "trialsFailed": c["Failed"],
            "trialMetricsUnavailable": c["MetricsUnavailable"],
            "trialsKilled": c["Killed"],
            "trialsRunning": sum(t.condition == "Running" for t in self.trials),
            "succeededTrialList": by("Succeeded"),
            "failedTrialList": by("Failed"),
            "metricsUnavailableTrialList": by("MetricsUnavailable"),
            "killedTrialList": by("Killed"),
            "runningTrialList": by("Running"),
        })
        best = self._best()
        if best is not None:
            status["currentOptimalTrial"] = {
                "bestTrialName": best.name,
                "parameterAssignments": [{"name": k, "value": v} for k, v in best.assignments.items()],
                "observation": {"metrics": _observation(best)},
            }
        else:
            status.pop("currentOptimalTrial", None)
        self.doc["trials"] = [t.document(self.out_dir) for t in self.trials]
        atomic_write_json(self.out_dir / st.STATUS_FILE, self.doc, durable=durable)
        self._written = True

    def _distributions(self, optuna) -> dict:
        out = {}
        try:
            for p in self.spec.parameters:
                if p.type == "int":
                    step = int(p.step) if p.step and not p.log else 1
                    out[p.name] = optuna.distributions.IntDistribution(int(p.min), int(p.max), log=p.log, step=step)
                elif p.type == "double":
                    out[p.name] = optuna.distributions.FloatDistribution(
                        p.min, p.max, log=p.log, step=None if p.log else p.step
                    )
                else:
                    out[p.name] = optuna.distributions.CategoricalDistribution(p.values)
        except (ValueError, OverflowError, TypeError) as exc:
            raise BadInput(f"spec.parameters: {p.name!r} has a feasibleSpace the engine cannot sample ({exc})",
                           source=str(self.spec.source)) from None
        return out

    # -- signals ----------------------------------------------------------------------------
    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            self._stop = True
            self.finished.put(None)

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_signal_handlers(previous) -> None:
        for sig, old in (previous or {}).items():
            signal.signal(sig, old)


def _observation(trial: Trial) -> list[dict]:
    if trial.kept is not None:
        return (trial.kept.get("observation") or {}).get("metrics") or []
    return trial.observation


def _true_condition(doc: dict) -> dict:
    return next((c for c in reversed((doc.get("status") or {}).get("conditions") or [])
                 if c.get("status") == "True"), {})


def _comparable(spec: dict) -> dict:
    """The spec without the fields Katib lets an existing Experiment change."""
    doc = json.loads(json.dumps(spec, default=str))
    for key in EDITABLE:
        doc.pop(key, None)
    return doc


def _format_value(param, value) -> str:
    """Katib passes parameter values as strings."""
    if param.type == "int":
        return str(int(value))
    if param.type == "double":
        return repr(float(value))
    return str(value)


def _parse_value(param, text: str):
    """A recorded assignment back as the value Optuna's distribution holds."""
    if param.type == "int":
        return int(text)
    if param.type == "double":
        return float(text)
    return str(text)


def _params_text(assignments: dict[str, str]) -> str:
    return " ".join(f"{k}={st.human_value(v)}" for k, v in assignments.items())


class PlainReporter:
    """Progress as one line per event on stderr (what Jenkins logs show)."""

    def __init__(self, write: Callable[[str], None] | None = None):
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.total: int | None = None
        self.done_count = 0
        self.t0 = time.monotonic()

    def note(self, text: str) -> None:
        self.write(text)

    def close(self) -> None:
        """The run is over, however it ended."""

    def begin(self, name: str, total: int | None, counts: dict, best: Trial | None) -> None:
        self.total = total
        self.done_count = sum(counts.values())
        self.t0 = time.monotonic()

    def resumed(self, name: str, plan: str, kept: int, rerun: int) -> None:
        what = "restarting (resumePolicy)" if plan == "restart" else "continuing the unfinished run"
        again = f", {rerun} stopped trial(s) run again" if rerun else ""
        self.write(f"experiment {name}: {what}: {kept} completed trial(s) kept{again}")

    def final(self, doc: dict) -> None:
        cond = _true_condition(doc)
        self.write(f"experiment {doc['metadata']['name']} already {st.phase(doc)} ({cond.get('reason', '')}); "
                   f"resumePolicy {(doc.get('spec') or {}).get('resumePolicy') or 'Never'}: reporting it as it is "
                   "(remove its folder under .mlops/experiments/ or use --name to run it again)")

    def _progress(self) -> str:
        total = f"/{self.total}" if self.total else ""
        return f"[{self.done_count}{total}, {_clock(time.monotonic() - self.t0)}]"

    def started(self, trial: Trial, running: dict) -> None:
        self.write(f"trial {trial.name} started: {_params_text(trial.assignments)}")

    def finished(self, trial: Trial, best: Trial | None, running: dict | None = None) -> None:
        self.done_count += 1
        value = f" objective={st.human_value(trial.objective)}" if trial.objective is not None else ""
        best_text = f"; best so far {best.name} ({st.human_value(best.objective)})" if best else ""
        self.write(f"trial {trial.name} {trial.condition.lower()}{value}{best_text} {self._progress()}")
        for line in trial.diagnosis:
            self.write(f"  {line}")

    def done(self, doc: dict) -> None:
        s = doc["status"]
        self.write(f"experiment {doc['metadata']['name']} {st.phase(doc).lower()}: {s.get('trialsSucceeded', 0)} "
                   f"succeeded, {s.get('trialsFailed', 0) + s.get('trialMetricsUnavailable', 0)} failed, "
                   f"{s.get('trialsKilled', 0)} killed")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class LiveReporter(PlainReporter):
    """A progress bar on a terminal (rich.progress): n/N trials, elapsed, ETA, running trials, best so far.
    Event lines are printed above it with ``console.print`` (no source links)."""

    def __init__(self, total: int | None = None, console=None):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console or Console(stderr=True)
        super().__init__(lambda line: self.console.print(line, markup=False, highlight=False))
        self.total = total
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("{task.fields[running]} running · best {task.fields[best]}"),
            console=self.console, transient=False,
        )
        self.task = None

    def begin(self, name: str, total: int | None, counts: dict, best: Trial | None) -> None:
        super().begin(name, total, counts, best)
        self.task = self.progress.add_task(name, total=total, completed=self.done_count, running=0,
                                           best=self._best_text(best))
        self.progress.start()

    @staticmethod
    def _best_text(best: Trial | None) -> str:
        return f"{best.name} = {st.human_value(best.objective)}" if best else "-"

    def started(self, trial, running) -> None:
        if self.task is not None:
            self.progress.update(self.task, running=len(running))
        super().started(trial, running)

    def finished(self, trial, best, running=None) -> None:
        super().finished(trial, best, running)
        if self.task is not None:
            self.progress.update(self.task, completed=self.done_count, running=len(running or {}),
                                 best=self._best_text(best))

    def done(self, doc) -> None:
        self.progress.stop()
        super().done(doc)

    def close(self) -> None:
        self.progress.stop()  # also after a failure: the terminal gets its cursor back

    def final(self, doc) -> None:
        super().final(doc)
