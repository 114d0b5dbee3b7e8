#!/usr/bin/env bash
# Simulate "new data arrives": generate the next batch, track it with DVC and commit it.
#   examples/new_data.sh build/demo/taxi-fare
set -euo pipefail
dest=${1:?usage: new_data.sh DEST}
here=$(cd "$(dirname "$0")" && pwd)
export PATH="$(cd "$here/.." && pwd)/.venv/bin:$PATH"
cd "$dest"
next=$(( $(ls data/trips/batch-*.csv | wc -l) + 1 ))
python generate_data.py --batch "$next" >&2
dvc add -q data/trips
git add data/trips.dvc
git commit -qm "data batch $next"
echo "committed data batch $next" >&2
