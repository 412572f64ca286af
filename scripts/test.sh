#!/usr/bin/env bash
# Install the test dependencies, start what the tests need (a real Docker engine and the offline
# base image), then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q -e ".[test]" 2>&1 | grep -v "Running pip as the 'root' user" || true

ruff check jupyter_mlws tests benchmarks
bash scripts/docker-up.sh
python -c 'from jupyter_mlws.environments.bootstrap import main; main()'

python -m pytest tests "$@"
