"""`mlops lineage` as the registry grows: 1, 50 and 500 registered versions of one model.

Lineage looks the deployed version up by name and number, so its time should not grow with
the number of versions.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from common import BIN, row, wall


def _setup(root: Path):
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from pyhelpers.config import load_config
    from pyhelpers.model import tracking

    (root / "mlops.yaml").write_text("project: bench-lineage\n")
    cfg = load_config(root / "mlops.yaml", environ={})
    client = tracking.connect(cfg)
    exp_id = tracking.ensure_experiment(client, cfg)
    mlflow.set_tracking_uri(cfg.tracking_uri)
    X = np.arange(20, dtype=float).reshape(10, 2)
    tags = {tracking.DATA_VERSION: "dv-000000000001", tracking.GIT_COMMIT: "0" * 40}
    with mlflow.start_run(experiment_id=exp_id, tags=tags) as run:
        info = mlflow.sklearn.log_model(LinearRegression().fit(X, X.sum(axis=1)), name="model")
    client.create_registered_model(cfg.registered_model)
    return cfg, client, run.info.run_id, info.model_id


def run(counts=(1, 50, 500), repeats: int = 3) -> list[dict]:
    from pyhelpers.deploy.gitops import push_manifests
    from pyhelpers.deploy.render import render_manifests
    from pyhelpers.model.registry import get_champion

    root = Path(tempfile.mkdtemp(prefix="mlops-bench-lineage-"))
    rows = []
    try:
        cfg, client, run_id, model_id = _setup(root)
        made = 0
        for n in counts:
            while made < n:
                mv = client.create_model_version(cfg.registered_model, source=f"models:/{model_id}", run_id=run_id,
                                                 model_id=model_id, tags={"mlops.data_version": "dv-000000000001"})
                made += 1
            client.set_registered_model_alias(cfg.registered_model, "champion", mv.version)
            push_manifests(cfg, render_manifests(cfg, get_champion(cfg)), f"deploy version {mv.version}")
            times = [wall([str(BIN / "mlops"), "lineage", "--json"], cwd=root) for _ in range(repeats)]
            rows.append(row(f"mlops lineage with {n} registered version(s)", statistics.median(times), "s"))
        rows.append(row(f"lineage time, {counts[-1]} vs {counts[0]} version(s)", rows[-1]["value"], "s",
                        rows[-1]["value"] / rows[0]["value"]))
        return rows
    finally:
        shutil.rmtree(root, ignore_errors=True)
