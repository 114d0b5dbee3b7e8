"""The local Experiment engine: runs a Katib Experiment's trials as processes on this machine.

It follows Katib v1beta1's rules: up to ``parallelTrialCount`` trials at once; stop when the
goal is reached (Succeeded, ExperimentGoalReached), when failed trials (metrics unavailable
included) reach ``maxFailedTrialCount`` (Failed), when completed trials reach
``maxTrialCount`` (Succeeded, ExperimentMaxTrialsReached), or when a grid is exhausted
(Succeeded, ExperimentSuggestionEndReached). Suggestions come from the Optuna sampler Katib's
suggestion service would use (see ``algorithms``).
"""

from __future__ import annotations

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

from pyhelpers.experiment import metrics as metrics_mod
from pyhelpers.experiment import status as st
from pyhelpers.experiment.algorithms import make_sampler
from pyhelpers.experiment.spec import ExperimentSpec
from pyhelpers.experiment.template import map_path, trial_command
from pyhelpers.fsutil import atomic_write_json

KILL_GRACE_SECONDS = 5.0
SNAPSHOT_SECONDS = 0.5  # progress snapshots of the status file at most this often (final write always)


@dataclass
class Trial:
    name: str
    number: int  # Optuna trial number
    assignments: dict[str, str]
    argv: list[str]
    cwd: Path
    log: Path
    start: float = 0.0
    started_at: str = ""
    completed_at: str = ""
    process: subprocess.Popen | None = None
    exit_code: int | None = None
    condition: str = "Running"  # Succeeded | Failed | MetricsUnavailable | Killed
    message: str = ""
    metrics: dict[str, metrics_mod.MetricLog] = field(default_factory=dict)
    objective: float | None = None
    killed: bool = False

    def document(self, state_dir: Path) -> dict:
        return {
            "name": self.name,
            "parameterAssignments": [{"name": k, "value": v} for k, v in self.assignments.items()],
            "condition": self.condition,
            "message": self.message,
            "observation": {"metrics": [m.observation() for m in self.metrics.values()]},
            "exitCode": self.exit_code,
            "startTime": self.started_at,
            "completionTime": self.completed_at,
            "log": str(self.log.relative_to(state_dir)),
        }


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
        self._last_snapshot = 0.0

    # -- public ---------------------------------------------------------------------------
    def run(self) -> dict:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._fresh_output_dir()
        grid = self.spec.grid() if self.spec.algorithm == "grid" else None
        sampler = make_sampler(self.spec.algorithm, self.spec.settings, grid)
        study = optuna.create_study(direction=self.spec.objective_type, sampler=sampler)
        distributions = self._distributions(optuna)
        grid_size = self.spec.grid_size() if grid is not None else None

        self.doc = self._initial_document()
        status = self.doc["status"]
        st.set_condition(status, "Created", "True", "ExperimentCreated", "Experiment is created")
        st.set_condition(status, "Running", "True", "ExperimentRunning", "Experiment is running")
        self._save(durable=False)

        outcome: tuple[str, str, str] | None = None
        previous = self._install_signal_handlers()
        running: dict[str, Trial] = {}
        try:
            while True:
                while outcome is None and len(running) < self.spec.parallel and self._may_create(grid_size):
                    trial = self._start(study.ask(distributions))
                    running[trial.name] = trial
                    self.reporter.started(trial, running)
                if not running:
                    break
                item = self.finished.get()
                if item is None:
                    raise Interrupted()
                trial = running.pop(item.name)
                self._finish(trial, study)
                self.reporter.finished(trial, self._best())
                if outcome is None:
                    outcome = self._check_completion(grid_size)
                    if outcome is not None and running:
                        self._kill_all(running)
                self._update_status(durable=False)
        except Interrupted:
            self._kill_all(running)
            outcome = ("Failed", "ExperimentInterrupted", "Experiment was interrupted (SIGINT/SIGTERM); trials were stopped")
            running = {}
        except BaseException:
            self._kill_all(running)  # e.g. the status file cannot be written: no trial may outlive the engine
            raise
        finally:
            self._restore_signal_handlers(previous)

        if outcome is None:  # nothing left to run without a stopping rule firing
            outcome = ("Succeeded", "ExperimentSuggestionEndReached", "Experiment has succeeded because the search space is exhausted")
        kind, reason, message = outcome
        st.set_condition(status, "Running", "False", reason, message)
        st.set_condition(status, kind, "True", reason, message)
        status["completionTime"] = st.now()
        self._update_status(durable=True)
        self.reporter.done(self.doc)
        return self.doc

    # -- trials ---------------------------------------------------------------------------
    def _may_create(self, grid_size: int | None) -> bool:
        created = len(self.trials)
        if self.spec.max_trials is not None and created >= self.spec.max_trials:
            return False
        return grid_size is None or created < grid_size

    def _start(self, optuna_trial) -> Trial:
        index = len(self.trials) + 1
        name = f"{self.name}-{index:04d}"
        assignments = {p.name: _format_value(p, optuna_trial.params[p.name]) for p in self.spec.parameters}
        argv, cwd, extra_env = trial_command(
            self.spec.spec, assignments, name, self.image_paths, self.spec.spec_dir, self.spec.namespace
        )
        log = self.out_dir / "trials" / f"{name}.log"
        trial = Trial(name, optuna_trial.number, assignments, argv, cwd, log)
        self.trials.append(trial)
        env = {**os.environ, **extra_env, "PYTHONUNBUFFERED": "1"}
        # `python` inside a shell command should also be this interpreter's environment.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        trial.started_at = st.now()
        trial.start = time.monotonic()
        with open(log, "wb") as out:
            try:
                trial.process = subprocess.Popen(
                    argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,  # own process group: killable as a whole
                )
            except OSError as exc:
                out.write(f"mlops: cannot start trial command {argv[0]!r}: {exc.strerror}\n".encode())
                trial.exit_code = 127
                self.finished.put(trial)
                return trial
        threading.Thread(target=self._wait, args=(trial,), daemon=True).start()
        return trial

    def _wait(self, trial: Trial) -> None:
        # Wait without reaping, so the pid (and its process group id) cannot be reused yet; then
        # kill what the trial left in its group (background children, or the real trainer when a
        # `sh -c` wrapper was killed), as a container's processes end with its main process.
        try:
            os.waitid(os.P_PID, trial.process.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        _signal_group(trial.process, signal.SIGKILL)
        trial.exit_code = trial.process.wait()
        self.finished.put(trial)

    def _finish(self, trial: Trial, study) -> None:
        import optuna

        trial.completed_at = st.now()
        names = self.spec.metric_names
        if self.spec.collector == "File":
            path = Path(map_path(self.spec.file_path, self.image_paths))
            path = path if path.is_absolute() else trial.cwd / path
            text = path.read_text(errors="replace") if path.is_file() else ""
            trial.metrics = (metrics_mod.parse_json_lines(text, names) if self.spec.file_format == "JSON"
                             else metrics_mod.parse_text(text, names, self.formats))
        else:
            trial.metrics = metrics_mod.parse_text(trial.log.read_text(errors="replace"), names, self.formats)
        objective = trial.metrics.get(self.spec.objective_metric)
        if trial.killed:
            trial.condition, trial.message = "Killed", "Trial was stopped because the Experiment completed"
        elif trial.exit_code != 0:
            trial.condition, trial.message = "Failed", f"Trial command exited with code {trial.exit_code}"
        elif objective is None:
            trial.condition = "MetricsUnavailable"
            trial.message = f"Metric {self.spec.objective_metric!r} was not reported by the trial"
        else:
            trial.condition, trial.message = "Succeeded", "Trial has succeeded"
            trial.objective = objective.value(self.spec.strategies[self.spec.objective_metric])
        if trial.condition == "Succeeded":
            study.tell(trial.number, trial.objective)
        else:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def _kill_all(self, running: dict[str, Trial]) -> None:
        """Stop every running trial's process group; wait so no orphan survives."""
        for trial in running.values():
            trial.killed = True
            if trial.process and trial.process.poll() is None:
                _signal_group(trial.process, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        for trial in running.values():
            if trial.process:
                try:
                    trial.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(trial.process, signal.SIGKILL)
                    trial.process.wait()
                trial.exit_code = trial.process.returncode
            trial.completed_at = st.now()
            trial.condition, trial.message = "Killed", "Trial was stopped because the Experiment ended"

    # -- experiment-level rules ---------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        counts = {"Succeeded": 0, "Failed": 0, "MetricsUnavailable": 0, "Killed": 0}
        for t in self.trials:
            if t.condition in counts:
                counts[t.condition] += 1
        return counts

    def _best(self) -> Trial | None:
        done = [t for t in self.trials if t.condition == "Succeeded"]
        if not done:
            return None
        pick = min if self.minimize else max
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
        if self.spec.max_failed and failed >= self.spec.max_failed:
            return ("Failed", "ExperimentMaxFailedTrialsReached",
                    f"Experiment has failed because max failed count has reached ({failed} failed trials)")
        completed = sum(c.values())
        if self.spec.max_trials is not None and completed >= self.spec.max_trials:
            return ("Succeeded", "ExperimentMaxTrialsReached", "Experiment has succeeded because max trial count has reached")
        if grid_size is not None and completed >= grid_size:
            return ("Succeeded", "ExperimentSuggestionEndReached", "Experiment has succeeded because the grid is exhausted")
        return None

    # -- documents --------------------------------------------------------------------------
    def _initial_document(self) -> dict:
        meta = dict(self.spec.doc.get("metadata") or {})
        meta["name"] = self.name
        meta["annotations"] = {**(meta.get("annotations") or {}), **self.annotations,
                               "mlops.io/spec-file": str(Path(self.spec.source).resolve())}
        return {
            "apiVersion": self.spec.doc["apiVersion"], "kind": "Experiment", "metadata": meta,
            "spec": self.spec.spec, "status": {"startTime": st.now(), "conditions": []}, "trials": [],
        }

    def _update_status(self, durable: bool) -> None:
        # Rewriting the whole document after every trial is quadratic in the trial count.
        if not durable and time.monotonic() - self._last_snapshot < SNAPSHOT_SECONDS:
            return
        self._last_snapshot = time.monotonic()
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
                "observation": {"metrics": [m.observation() for m in best.metrics.values()]},
            }
        self.doc["trials"] = [t.document(self.out_dir) for t in self.trials]
        self._save(durable)

    def _save(self, durable: bool) -> None:
        atomic_write_json(self.out_dir / st.STATUS_FILE, self.doc, durable=durable)

    def _fresh_output_dir(self) -> None:
        # A rerun never mixes old and new trials: the previous result is replaced as a whole.
        # Renamed aside first, so a failure (read-only or full disk) leaves it complete, not half-deleted.
        from pyhelpers.errors import OperationFailed

        try:
            if self.out_dir.exists():
                old = self.out_dir.with_name(f".{self.out_dir.name}.old-{os.getpid()}")
                os.rename(self.out_dir, old)
                shutil.rmtree(old, ignore_errors=True)
            (self.out_dir / "trials").mkdir(parents=True)
        except OSError as exc:
            raise OperationFailed(f"cannot write the results folder {self.out_dir}: {exc.strerror}") from None

    def _distributions(self, optuna) -> dict:
        out = {}
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
        return out

    # -- signals ----------------------------------------------------------------------------
    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            self.finished.put(None)

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_signal_handlers(previous) -> None:
        for sig, old in (previous or {}).items():
            signal.signal(sig, old)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _format_value(param, value) -> str:
    """Katib passes parameter values as strings."""
    if param.type == "int":
        return str(int(value))
    if param.type == "double":
        return repr(float(value))
    return str(value)


class PlainReporter:
    """Progress as one line per event on stderr (what Jenkins logs show)."""

    def __init__(self, write: Callable[[str], None] | None = None):
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))

    def started(self, trial: Trial, running: dict) -> None:
        params = " ".join(f"{k}={v}" for k, v in trial.assignments.items())
        self.write(f"trial {trial.name} started: {params}")

    def finished(self, trial: Trial, best: Trial | None) -> None:
        value = f" objective={trial.objective:g}" if trial.objective is not None else ""
        best_text = f"; best so far {best.name} ({best.objective:g})" if best else ""
        self.write(f"trial {trial.name} {trial.condition.lower()}{value}{best_text}")

    def done(self, doc: dict) -> None:
        s = doc["status"]
        self.write(f"experiment {doc['metadata']['name']} {st.phase(doc).lower()}: {s.get('trialsSucceeded', 0)} "
                   f"succeeded, {s.get('trialsFailed', 0) + s.get('trialMetricsUnavailable', 0)} failed, "
                   f"{s.get('trialsKilled', 0)} killed")


class LiveReporter(PlainReporter):
    """A live table on a terminal: trials running/succeeded/failed and the best so far."""

    def __init__(self, total: int | None):
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        super().__init__(self.console.log)
        self.total = total
        self.counts = {"running": 0, "succeeded": 0, "failed": 0}
        self.best = "-"
        self.live = Live(self._render(), console=self.console, transient=True)
        self.live.start()

    def _render(self):
        from rich.text import Text

        total = f"/{self.total}" if self.total else ""
        c = self.counts
        return Text(f"trials{total}: {c['running']} running, {c['succeeded']} succeeded, "
                    f"{c['failed']} failed | best: {self.best}", style="bold")

    def started(self, trial, running) -> None:
        self.counts["running"] = len(running)
        self.live.update(self._render())
        super().started(trial, running)

    def finished(self, trial, best) -> None:
        self.counts["running"] = max(0, self.counts["running"] - 1)
        key = "succeeded" if trial.condition == "Succeeded" else "failed"
        self.counts[key] += 1
        if best is not None:
            self.best = f"{best.name} = {best.objective:g}"
        self.live.update(self._render())
        super().finished(trial, best)

    def done(self, doc) -> None:
        self.live.stop()
        super().done(doc)
