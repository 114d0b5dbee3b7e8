"""Local Experiment engine overhead: N trivial trials vs a plain shell loop of the same commands.

The trial command is `sh -c 'sleep S; echo loss=X'`: the sleep stands for the work a trial does
(any real training takes far longer), so the ratio shows what the engine adds around it: process
start-up of `mlops`, importing Optuna, asking the sampler, starting the process, collecting
metrics and writing the status document.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from common import BIN, interleaved, row

SPEC = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: bench
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm:
    algorithmName: random
    algorithmSettings: [{{name: random_state, value: "1"}}]
  parallelTrialCount: {parallel}
  maxTrialCount: {trials}
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {{min: "0", max: "1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: busybox
                command: ["sh", "-c", "sleep {sleep}; echo loss=${{trialParameters.x}}"]
            restartPolicy: Never
"""


def _spec(folder: Path, parallel: int, trials: int, sleep: float) -> Path:
    path = folder / f"bench-p{parallel}-n{trials}.yaml"
    path.write_text(SPEC.format(parallel=parallel, trials=trials, sleep=sleep))
    return path


def run(trials: int = 20, sleep: float = 0.25, repeats: int = 3) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    try:
        loop = f"for i in $(seq {trials}); do sh -c 'sleep {sleep}; echo loss=0.$i'; done"
        mlops = str(BIN / "mlops")
        cmds = {"shell loop": (loop, {"shell": True})}
        for parallel in (1, 2):
            spec = _spec(folder, parallel, trials, sleep)
            # a finished Experiment is final (resumePolicy Never): each repeat starts from an empty state
            cmds[f"engine p{parallel}"] = (f"rm -rf .mlops/experiments/bench && {mlops} experiment run --local {spec}",
                                           {"cwd": folder, "shell": True})
        times = interleaved(cmds, repeats)
        base = times["shell loop"]
        rows = [row(f"shell loop, {trials} trials of sleep {sleep}s", base, "s")]
        for parallel, limit in ((1, 1.15), (2, 0.65)):
            t = times[f"engine p{parallel}"]
            rows.append(row(f"engine parallelTrialCount={parallel} / shell loop", t, "s", t / base,
                            f"<= {limit}x", t / base <= limit))
        per_trial_ms = (times["engine p1"] - base) / trials * 1000
        rows.append(row("engine overhead per trial (p1, incl. start-up)", per_trial_ms, "ms"))
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scale(counts=(10, 100, 500), repeats: int = 1) -> list[dict]:
    """Per-trial overhead as the number of trials grows (it should stay flat)."""
    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    rows = []
    try:
        for n in counts:
            spec = _spec(folder, 1, n, 0)
            times = interleaved({"engine": (f"rm -rf .mlops/experiments/bench && {BIN / 'mlops'} experiment run "
                                            f"--local {spec}", {"cwd": folder, "shell": True})}, repeats)
            loop = interleaved({"loop": (f"for i in $(seq {n}); do sh -c 'echo loss=0.$i'; done", {"shell": True})},
                               repeats)
            rows.append(row(f"engine {n} trivial trials: overhead per trial", (times["engine"] - loop["loop"]) / n * 1000,
                            "ms"))
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)




def sample_project(repeats: int = 1) -> list[dict]:
    """The sample project's Experiment (8 trials, 2 at a time) vs running its 8 trials by hand, one by one."""
    import json
    import subprocess
    import time

    from common import REPO, env_with_venv

    from pyhelpers.experiment.spec import load_spec
    from pyhelpers.experiment.template import trial_command

    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-sample-"))
    project = folder / "taxi-fare"
    try:
        subprocess.run([str(REPO / "examples" / "prepare_demo.sh"), str(project)], check=True,
                       capture_output=True, env=env_with_venv())
        engine, by_hand = [], []
        for _ in range(repeats):
            shutil.rmtree(project / ".mlops" / "experiments" / "taxi-fare-tuning", ignore_errors=True)
            start = time.perf_counter()
            subprocess.run([str(BIN / "mlops"), "experiment", "run", "--local"], cwd=project, check=True,
                           capture_output=True, env=env_with_venv())
            engine.append(time.perf_counter() - start)
            doc = json.loads((project / ".mlops" / "experiments" / "taxi-fare-tuning" / "experiment.json").read_text())
            spec = load_spec(project / "katib" / "experiment.yaml")
            commands = [trial_command(spec.spec, {a["name"]: a["value"] for a in t["parameterAssignments"]}, t["name"],
                                      {"/app": project}, spec.spec_dir)[0] for t in doc["trials"]]
            start = time.perf_counter()
            for argv in commands:
                subprocess.run(argv, cwd=spec.spec_dir, check=True, capture_output=True)
            by_hand.append(time.perf_counter() - start)
        e, h = min(engine), min(by_hand)
        return [row(f"sample project: its {len(commands)} trials by hand, one after another", h, "s"),
                row("sample project: mlops experiment run --local (2 at a time) / by hand", e, "s", e / h)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def metrics(repeats: int = 3) -> list[dict]:
    """Katib's default metricsFormat on one long line without spaces that names the metric (a base64
    blob after "loss"): RE2 (what the engine uses, as Katib's Go collector) against Python's
    backtracking ``re``, which is quadratic here. ``re`` runs on 5 kB and 10 kB only (4x the time for 2x the line): 400 kB would
    take about half an hour."""
    import re

    from pyhelpers.experiment.metrics import DEFAULT_FORMAT, compile_formats, parse_text

    formats = compile_formats(None)
    rows = []
    for size in (40_000, 400_000, 4_000_000):
        line = "loss" + "A" * size + "\nloss=0.5\n"
        best = min(_timed(lambda text=line: parse_text(text, ["loss"], formats)) for _ in range(repeats))
        rows.append(row(f"RE2: default format on a {size // 1000} kB line", best * 1000, "ms", None,
                        "< 1000 ms" if size == 400_000 else None, best < 1.0 if size == 400_000 else None))
    backtracking = re.compile(DEFAULT_FORMAT)
    for size in (5_000, 10_000):
        line = "loss" + "A" * size
        elapsed = _timed(lambda text=line: list(backtracking.finditer(text)))
        rows.append(row(f"Python re (not used): the same format on a {size // 1000} kB line", elapsed * 1000, "ms"))
    return rows


def _timed(fn) -> float:
    import time

    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sigterm(repeats: int = 3) -> list[dict]:
    """SIGTERM to `mlops experiment run --local` while two trials run: seconds until it has stopped them,
    written its status and exited (target: within seconds)."""
    import signal
    import subprocess
    import time

    from common import env_with_venv

    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-sigterm-"))
    try:
        spec = _spec(folder, 2, 4, 60)
        samples = []
        for _ in range(repeats):
            shutil.rmtree(folder / ".mlops", ignore_errors=True)
            proc = subprocess.Popen([str(BIN / "mlops"), "experiment", "run", "--local", str(spec)], cwd=folder,
                                    env=env_with_venv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            status = folder / ".mlops" / "experiments" / "bench" / "experiment.json"
            deadline = time.monotonic() + 60
            while not status.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # both trials are running
            start = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            samples.append(time.perf_counter() - start)
        worst = max(samples)
        rows = [row("SIGTERM during a run -> trials stopped, status written, exit (worst of "
                    f"{repeats})", worst, "s", None, "<= 5 s", worst <= 5)]
        return rows + _sigterm_while_reading(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sigterm_while_reading(folder: Path, lines: int = 1_500_000) -> list[dict]:
    """A trial that printed 1.5 million metric lines (~10 MB) and ended: the engine is reading its log
    when SIGTERM comes. Reading it all takes the time in the first row (google-re2 costs ~9 µs per
    matching line from Python); the engine stops in the second."""
    import signal
    import subprocess
    import time

    from common import env_with_venv

    from pyhelpers.experiment.metrics import compile_formats, parse_lines, read_lines

    script = folder / "big.py"
    script.write_text(f"import sys\nsys.stdout.write('loss=1\\n' * {lines})\nsys.stdout.flush()\n"
                      "open('trial-done', 'w').close()\n")
    spec = folder / "big.yaml"
    spec.write_text(SPEC.format(parallel=1, trials=1, sleep=0).replace(
        'command: ["sh", "-c", "sleep 0; echo loss=${trialParameters.x}"]',
        'command: ["python", "big.py", "--x=${trialParameters.x}"]'))
    shutil.rmtree(folder / ".mlops", ignore_errors=True)
    (folder / "trial-done").unlink(missing_ok=True)
    proc = subprocess.Popen([str(BIN / "mlops"), "experiment", "run", "--local", str(spec)], cwd=folder,
                            env=env_with_venv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (folder / "trial-done").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the trial has ended: the engine reads its log
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(300)
    stopped = time.perf_counter() - start
    log = folder / ".mlops" / "experiments" / "bench" / "trials" / "bench-0001.log"
    t0 = time.perf_counter()
    parse_lines(read_lines(log), ["loss"], compile_formats(None))
    full = time.perf_counter() - t0
    return [row(f"reading a {log.stat().st_size // 1_000_000} MB trial log completely", full, "s"),
            row("SIGTERM while that log is read -> exit", stopped, "s", None, "<= 5 s", stopped <= 5)]


if __name__ == "__main__":
    for r in [*run(), *metrics(), *sigterm()]:
        print(r)
