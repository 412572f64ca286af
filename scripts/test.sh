#!/usr/bin/env bash
# Install the test dependencies and run the whole test suite: style and types, then pytest (unit
# tests on real SQLite, jobs with real papermill kernels, a real Docker engine, the REST server,
# magics in a real kernel, a real two-node Ray cluster), then the JupyterLab extension in a real
# browser.
# Everything the tests need (Docker engine, base image, Chromium, the Ray cluster) is installed
# and started here or by the tests' fixtures. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Python writes bytecode caches, as on a user's machine (an environment that turns it off makes
# every job, kernel and server process compile its imports again; venvs and images are
# compiled when they are built, so no process writes into a cached environment).
unset PYTHONDONTWRITEBYTECODE

step() { printf '\n== %s\n' "$*"; }

step "installing the package with its test dependencies (builds the labextension)"
python -m pip install -q -e ".[test]" 2>&1 | grep -v "Running pip as the 'root' user" || true

# mypy keeps one core busy for over a minute: the browser tests' dependencies are installed on
# the other meanwhile (scripts/browser-tests.sh then finds them installed), and the Docker engine
# and base image are made ready; pytest starts only when all three succeeded.
step "ruff and mypy, with the browser tests' dependencies and the Docker engine beside them"
ruff check jupyter_mlws tests benchmarks
WAIT_DIR=$(mktemp -d)
mypy jupyter_mlws >"$WAIT_DIR/mypy" 2>&1 & mypy_pid=$!
(cd labextension/ui-tests && jlpm install) >"$WAIT_DIR/ui" 2>&1 & ui_pid=$!
trap 'kill "$mypy_pid" "$ui_pid" 2>/dev/null || true' EXIT  # when the Docker step fails
bash scripts/docker-up.sh
python -c 'from jupyter_mlws.environments.bootstrap import main; main()'
failed=""
wait "$ui_pid" || { cat "$WAIT_DIR/ui"; failed="installing the ui-tests dependencies"; }
wait "$mypy_pid" || failed="${failed:+$failed, }mypy"
cat "$WAIT_DIR/mypy"
rm -rf "$WAIT_DIR"
[[ -z "$failed" ]] || { echo "failed: $failed" >&2; exit 1; }

step "pytest (the Ray cluster tests start and stop a two-node cluster themselves)"
trap 'bash scripts/ray-cluster.sh down >/dev/null 2>&1 || true' EXIT
python -m pytest -n 2 --dist loadgroup tests "$@"

step "the JupyterLab extension in a real browser"
bash scripts/browser-tests.sh
