#!/usr/bin/env bash
# Make a scratch copy of the taxi-fare example as its own git + DVC repository, so the demo
# never touches this checkout. Idempotent: an existing copy is kept (its state is the point).
#   examples/prepare_demo.sh build/demo/taxi-fare
set -euo pipefail
dest=${1:?usage: prepare_demo.sh DEST}
here=$(cd "$(dirname "$0")" && pwd)
venv_bin=$(cd "$here/.." && pwd)/.venv/bin
export PATH="$venv_bin:$PATH"

if [ -d "$dest/.git" ]; then
  echo "demo project exists: $dest (delete it for a fresh start)" >&2
  exit 0
fi
mkdir -p "$dest"
cp -R "$here/taxi-fare/." "$dest/"
cd "$dest"
git init -q -b main
git config user.name "mlops demo"
git config user.email "demo@localhost"
dvc init -q
dvc config core.analytics false
python generate_data.py --batch 1 >&2
dvc add -q data/trips
git add -A
git commit -qm "taxi-fare project with data batch 1"
echo "prepared $dest (git + DVC, data batch 1)" >&2
