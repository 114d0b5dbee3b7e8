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
