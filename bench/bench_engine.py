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
            cmds[f"engine p{parallel}"] = ([mlops, "experiment", "run", "--local", str(spec)], {"cwd": folder})
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
            times = interleaved({"engine": ([str(BIN / "mlops"), "experiment", "run", "--local", str(spec)],
                                            {"cwd": folder})}, repeats)
            loop = interleaved({"loop": (f"for i in $(seq {n}); do sh -c 'echo loss=0.$i'; done", {"shell": True})},
                               repeats)
            rows.append(row(f"engine {n} trivial trials: overhead per trial", (times["engine"] - loop["loop"]) / n * 1000,
                            "ms"))
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    for r in run():
        print(r)


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
