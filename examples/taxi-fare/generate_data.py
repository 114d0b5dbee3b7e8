"""Deterministic synthetic NYC-taxi-like trips: one CSV per batch, so new data can be simulated.

    python generate_data.py --batch 2 --out data/trips     # writes data/trips/batch-0002.csv

The same (seed, batch) always produces the same bytes. Fares follow the 2023 NYC yellow-cab
tariff shape (initial charge + per-mile + per-minute, airport flat fare, night and rush-hour
surcharges) plus noise, so a model has something real to learn.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

ZONES = 60  # pickup/dropoff zone ids 1..60; zone 1 plays JFK (flat fare), 2 LaGuardia


def generate(batch: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, batch])
    start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * (batch - 1))
    pickup = start + pd.to_timedelta(rng.uniform(0, 7 * 24 * 3600, rows), unit="s")
    pickup_zone = rng.integers(1, ZONES + 1, rows)
    dropoff_zone = rng.integers(1, ZONES + 1, rows)
    distance = np.round(rng.gamma(shape=2.0, scale=1.6, size=rows) + 0.1, 2)
    hour = pickup.hour.to_numpy()
    rush = ((hour >= 16) & (hour < 20)) & (pickup.day_of_week.to_numpy() < 5)
    night = (hour >= 20) | (hour < 6)
    speed_mph = np.clip(rng.normal(np.where(rush, 9, 14), 3), 3, 40)
    minutes = np.round(distance / speed_mph * 60 + rng.exponential(2, rows), 1)
    passengers = rng.choice([1, 2, 3, 4, 5, 6], size=rows, p=[0.7, 0.14, 0.05, 0.03, 0.05, 0.03])
    payment = rng.choice(["card", "cash"], size=rows, p=[0.8, 0.2])
    fare = 3.0 + 3.5 * distance + 0.7 * minutes + 2.5 * rush + 1.0 * night
    airport = (pickup_zone == 1) | (dropoff_zone == 1)
    fare = np.where(airport, 70.0 + 2.5 * rush, fare)
    fare = fare + np.where(pickup_zone == 2, 1.75, 0.0) + rng.normal(0, 1.2, rows)
    return pd.DataFrame(
        {
            "pickup_datetime": pickup.strftime("%Y-%m-%d %H:%M:%S"),
            "pickup_zone": pickup_zone,
            "dropoff_zone": dropoff_zone,
            "passenger_count": passengers,
            "trip_distance": distance,
            "trip_minutes": minutes,
            "payment_type": payment,
            "fare_amount": np.round(np.maximum(fare, 3.0), 2),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, required=True, help="batch number (1, 2, ...)")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20240101)
    parser.add_argument("--out", default="data/trips")
    args = parser.parse_args()
    if args.batch < 1 or args.rows < 1:
        parser.error("--batch and --rows must be positive")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"batch-{args.batch:04d}.csv"
    generate(args.batch, args.rows, args.seed).to_csv(path, index=False)
    print(f"wrote {path} ({args.rows} trips)")


if __name__ == "__main__":
    main()
