#!/usr/bin/env bash
# Install the test dependencies and run the whole test suite: style and types, then pytest (unit
# tests on real SQLite, jobs with real papermill kernels, a real Docker engine, the REST server,
# magics in a real kernel, a real two-node Ray cluster), then the JupyterLab extension in a real
# browser.
# Everything the tests need (Docker engine, base image, Chromium, the Ray cluster) is installed
# and started here or by the tests' fixtures. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "installing the package with its test dependencies (builds the labextension)"
python -m pip install -q -e ".[test]" 2>&1 | grep -v "Running pip as the 'root' user" || true

step "ruff and mypy"
ruff check jupyter_mlws tests benchmarks
mypy jupyter_mlws

step "Docker engine and the offline base image"
bash scripts/docker-up.sh
python -c 'from jupyter_mlws.environments.bootstrap import main; main()'

step "pytest (the Ray cluster tests start and stop a two-node cluster themselves)"
trap 'bash scripts/ray-cluster.sh down >/dev/null 2>&1 || true' EXIT
python -m pytest -n 2 --dist loadgroup tests "$@"

step "the JupyterLab extension in a real browser"
bash scripts/browser-tests.sh
