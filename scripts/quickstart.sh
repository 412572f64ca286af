#!/usr/bin/env bash
# Set up jupyter_mlws and run the quickstart on the embedded default (SQLite in ./.mlws):
# define an environment, run the example notebook as a job on local compute, register the model
# it trained, list it, and say how to see it in JupyterLab's sidebar.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q -e . 2>&1 | grep -v "Running pip as the 'root' user" || true
export MLWS_WORKSPACE="$PWD/.mlws"

mlws workspace init .
echo "== 1. define the training environment (identified by the hash of its packages)"
mlws env create -f examples/environment.yml
echo "== 2. run notebooks/train.ipynb as a job on local compute (the first run builds the"
echo "      environment's virtualenv; later runs reuse it)"
JOB=$(mlws job notebook notebooks/train.ipynb -e iris-train@latest -p C 0.5 --out model \
      --wait -o json | python -c 'import json,sys; print(json.load(sys.stdin)["id"])')
mlws job show "$JOB"
echo "== 3. register the model the job produced, and the example data"
mlws model create -n iris-classifier -p "mlws://jobs/$JOB/outputs/model" --tag trained-by=quickstart
mlws data create -f examples/data.yml
echo "== 4. what the workspace holds"
mlws model list
mlws model show iris-classifier
mlws job list
echo
echo "== 5. see it in JupyterLab: run 'jupyter lab' in this folder (add --allow-root as root) and"
echo "      open the ML Workspace panel in the left bar: Models > iris-classifier > version 1"
echo "      names the job that trained it; Jobs shows the run with its log and metrics."
