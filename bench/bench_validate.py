"""`mlops experiment validate` wall time (target < 0.5 s): the example on both engines (outside and
inside its project, where --engine katib loads mlops.yaml to know whether to ask the cluster), a large
generated spec (300 parameters, a Job with 21 containers), the in-process ``load_spec`` time of the
large spec, and `mlops --help` as the start-up floor of this machine at that moment.
Run alone: `python bench/bench_validate.py`."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import yaml
from common import BIN, REPO, interleaved, row

EXAMPLE = REPO / "examples" / "taxi-fare" / "katib" / "experiment.yaml"
TARGET = 0.5  # seconds, issue 9


def large_spec(n_params: int = 300, n_containers: int = 20, n_env: int = 50) -> dict:
    """A valid Experiment much larger than any real one: every parameter reaches the command."""
    params, trial_params, args = [], [], []
    for i in range(n_params):
        kind = ("double", "int", "categorical")[i % 3]
        space = ({"min": "0.001", "max": "1", "distribution": "logUniform"} if kind == "double"
                 else {"min": "1", "max": "100", "step": "3"} if kind == "int" else {"list": ["a", "b", "c"]})
        params.append({"name": f"p-{i}", "parameterType": kind, "feasibleSpace": space})
        trial_params.append({"name": f"p{i}", "reference": f"p-{i}", "description": f"parameter {i}"})
        args.append(f"--p{i}=${{trialParameters.p{i}}}")
    sidecars = [{"name": f"side-{j}", "image": "example/side:1", "command": ["sleep", "1"],
                 "env": [{"name": f"E{k}", "value": str(k)} for k in range(n_env)],
                 "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}} for j in range(n_containers)]
    main = {"name": "train", "image": "example/train:1", "command": ["python", "/app/train.py", *args],
            "resources": {"limits": {"cpu": 2, "memory": "2Gi"}}}
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "large-spec"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["acc"]},
            "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
            "parallelTrialCount": 4, "maxTrialCount": 100, "maxFailedTrialCount": 10,
            "parameters": params,
            "trialTemplate": {"primaryContainerName": "train", "trialParameters": trial_params, "trialSpec": {
                "apiVersion": "batch/v1", "kind": "Job",
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [main, *sidecars]}}}}},
        },
    }


def run(repeats: int = 7) -> list[dict]:
    from pyhelpers.experiment.spec import load_spec

    mlops = str(BIN / "mlops")
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "large.yaml"
        big.write_text(yaml.safe_dump(large_spec(), sort_keys=False))
        commands = {
            "mlops --help (start-up floor)": ([mlops, "--help"], {}),
            "validate example (local)": ([mlops, "experiment", "validate", str(EXAMPLE)], {}),
            "validate example in its project (--engine katib, reads mlops.yaml)": (
                [mlops, "experiment", "validate", "--engine", "katib", "katib/experiment.yaml"], {"cwd": EXAMPLE.parents[1]}),
            "validate example (--engine katib)": ([mlops, "experiment", "validate", "--engine", "katib",
                                                   str(EXAMPLE)], {}),
            "validate large spec (--engine katib)": ([mlops, "experiment", "validate", "--engine", "katib",
                                                      str(big)], {}),
        }
        times = interleaved(commands, repeats)
        in_process = []
        for _ in range(repeats):
            start = time.perf_counter()
            load_spec(big, engine="katib")
            in_process.append(time.perf_counter() - start)
        size_kb = big.stat().st_size / 1024
    floor = times.pop("mlops --help (start-up floor)")
    rows = [row("mlops --help (start-up floor)", floor, "s")]
    rows += [row(f"{name}", seconds, "s", seconds / TARGET, f"< {TARGET} s", seconds < TARGET)
             for name, seconds in times.items()]
    rows.append(row(f"load_spec of the large spec in process ({size_kb:.0f} KB, 300 parameters)",
                    statistics.median(in_process), "s"))
    return rows


if __name__ == "__main__":
    for r in run():
        verdict = "" if r["ok"] is None else ("OK" if r["ok"] else "MISSED")
        print(f"{r['name']:<70} {r['value']:>8.3f} {r['unit']} {r['target'] or ''} {verdict}")
