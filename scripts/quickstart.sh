#!/usr/bin/env bash
# Set up jupyter_mlws and run the quickstart on the embedded default (SQLite in ./.mlws).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q -e . 2>&1 | grep -v "Running pip as the 'root' user" || true
export MLWS_WORKSPACE="$PWD/.mlws"

mlws workspace init .
echo "== define the example environment (identified by the hash of its packages)"
mlws env create -f examples/environment.yml
echo "== register the example model and data"
mlws model create -f examples/model.yml
mlws data create -f examples/data.yml
echo "== what the workspace holds"
mlws env list
mlws model list
mlws data list
mlws model show iris-classifier
