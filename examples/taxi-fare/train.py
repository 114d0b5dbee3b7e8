"""Train a fare model on the DVC-tracked trips. A plain script: hyperparameters are flags and
metrics are printed in Katib's StdOut format (``name=value``), so Katib, the local engine and
``mlops model train`` all run it unchanged.

Hand-over to ``mlops model train`` (optional, no MLflow code here): when the environment
variable ``MLOPS_MODEL_DIR`` is set, the fitted model is saved there as ``model.joblib`` with
``validation.csv`` (held-out rows with the target), ``input_example.json`` and
``mlops-model.json`` describing them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_squared_error

FEATURES = ["pickup_zone", "dropoff_zone", "passenger_count", "trip_distance", "trip_minutes",
            "pickup_hour", "pickup_weekday", "is_card", "is_airport"]
TARGET = "fare_amount"


def load(data_dir: Path) -> pd.DataFrame:
    files = sorted(data_dir.glob("*.csv"))
    if not files:
        sys.exit(f"train.py: no CSV files in {data_dir} (did you `dvc pull`?)")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def featurize(trips: pd.DataFrame) -> pd.DataFrame:
    when = pd.to_datetime(trips["pickup_datetime"])
    out = trips.assign(
        pickup_hour=when.dt.hour,
        pickup_weekday=when.dt.day_of_week,
        is_card=(trips["payment_type"] == "card").astype(int),
        is_airport=((trips["pickup_zone"] == 1) | (trips["dropoff_zone"] == 1)).astype(int),
    )
    return out[FEATURES].astype("float64")


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(mean_squared_error(y_true, y_pred)))


def main() -> None:
    p = argparse.ArgumentParser(description="Train the taxi fare model.")
    p.add_argument("--data-dir", default="data/trips")
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--n-estimators", type=int, default=100)
    p.add_argument("--max-depth", type=int, default=3)
    p.add_argument("--subsample", type=float, default=1.0)
    p.add_argument("--loss", default="squared_error", choices=["squared_error", "huber", "absolute_error"])
    p.add_argument("--seed", type=int, default=42, help="random state of the boosting")
    args = p.parse_args()

    trips = load(Path(args.data_dir))
    X, y = featurize(trips), trips[TARGET]
    # A trip's split depends only on the trip itself, so it stays in the same split when new batches
    # arrive: a champion trained earlier has never seen any of today's validation rows.
    key = pd.util.hash_pandas_object(trips[["pickup_datetime", "pickup_zone", "dropoff_zone", "trip_distance"]],
                                     index=False)
    val = (key % 5 == 0).to_numpy()
    X_train, X_val, y_train, y_val = X[~val], X[val], y[~val], y[val]
    model = GradientBoostingRegressor(
        learning_rate=args.learning_rate, n_estimators=args.n_estimators, max_depth=args.max_depth,
        subsample=args.subsample, loss=args.loss, random_state=args.seed,
    )
    model.fit(X_train, y_train)
    print(f"rows={len(trips)}")
    print(f"train-rmse={rmse(y_train, model.predict(X_train)):.6f}")
    print(f"validation-rmse={rmse(y_val, model.predict(X_val)):.6f}")

    model_dir = os.environ.get("MLOPS_MODEL_DIR")
    if model_dir:
        import joblib

        out = Path(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, out / "model.joblib")
        X_val.assign(**{TARGET: y_val}).to_csv(out / "validation.csv", index=False)
        (out / "input_example.json").write_text(X_val.head(5).to_json(orient="split", index=False))
        (out / "mlops-model.json").write_text(json.dumps({
            "flavor": "sklearn", "model": "model.joblib", "target": TARGET,
            "validation": "validation.csv", "input_example": "input_example.json",
        }, indent=2))


if __name__ == "__main__":
    main()
