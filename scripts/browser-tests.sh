#!/usr/bin/env bash
# Browser tests of the JupyterLab extension (galata + Playwright + Debian's Chromium).
#
# Installs Chromium when it is missing, builds the extension from labextension/ (the server
# serves this build ahead of any installed copy), installs the ui-tests dependencies, then runs
# labextension/ui-tests (Playwright project `ui`): Playwright starts `jupyter lab` with
# ui-tests/jupyter_server_test_config.py on a free port (root allowed) serving a fresh workspace
# ($MLWS_WORKSPACE, seeded there with a model with three versions, an environment and data).
#
# Screenshots (light and dark theme) are kept in labextension/ui-tests/test-results/screenshots/,
# the HTML report in labextension/ui-tests/playwright-report/. Extra arguments go to
# `playwright test` (e.g. -g "expands"). Exits non-zero when anything fails; never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
UI="$ROOT/labextension/ui-tests"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export MLWS_CHROMIUM="${MLWS_CHROMIUM:-/usr/bin/chromium}"

step() { printf '\n== %s\n' "$*"; }

# -- a browser ------------------------------------------------------------------------------
if [ ! -x "$MLWS_CHROMIUM" ]; then
    step "installing Chromium (Debian)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x "$MLWS_CHROMIUM" ] || { echo "no Chromium at $MLWS_CHROMIUM" >&2; exit 1; }
"$MLWS_CHROMIUM" --version 2>/dev/null | head -1 || true

# -- the package (server extension) and the labextension build -------------------------------
server_exts=$(jupyter server extension list 2>&1 || true)
if ! python -c 'import jupyter_mlws.server' 2>/dev/null \
    || ! grep -q 'jupyter_mlws.*enabled' <<<"$server_exts"; then
    step "pip install -e . (server extension)"
    python -m pip install -q -e . 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
# built anew unless the build is newer than every source (scripts/test.sh's `pip install -e`
# has just built it)
built=jupyter_mlws/labextension/package.json
if [ -f "$built" ] && [ -z "$(find labextension/src labextension/style labextension/package.json \
        labextension/tsconfig.json labextension/yarn.lock -newer "$built" -print -quit)" ]; then
    step "the labextension build is up to date"
else
    step "building the labextension"
    (cd labextension && jlpm install >/dev/null && jlpm build >/dev/null)
fi
test -f "$built"

# -- test dependencies -----------------------------------------------------------------------
step "installing ui-tests dependencies"
(cd "$UI" && jlpm install >/dev/null)

# -- run ---------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/mlws-browser-tests.XXXXXX)
export MLWS_WORKSPACE="$WORK/workspace"
export JUPYTERLAB_GALATA_ROOT_DIR="$WORK/root"
export MLWS_SERVER_LOG="${MLWS_SERVER_LOG:-$WORK/jupyter-server.log}"  # kept when given
mkdir -p "$JUPYTERLAB_GALATA_ROOT_DIR"
rm -rf "$UI/test-results" "$UI/playwright-report"

step "running the galata tests (workspace $MLWS_WORKSPACE)"
status=0
(cd "$UI" && jlpm playwright test --project ui "$@") || status=$?

shots="$UI/test-results/screenshots"
if [ "$status" -ne 0 ]; then
    echo "browser tests FAILED (exit $status); last lines of the server log ($MLWS_SERVER_LOG):" >&2
    tail -n 60 "$MLWS_SERVER_LOG" >&2 || true
    echo "report: $UI/playwright-report/index.html; traces and screenshots: $UI/test-results/" >&2
    exit "$status"
fi
if [ $# -eq 0 ]; then
    for name in sidebar-light sidebar-dark job-light job-dark; do
        [ -s "$shots/$name.png" ] || { echo "missing screenshot $shots/$name.png" >&2; exit 1; }
    done
fi
step "browser tests passed; screenshots:"
ls -1 "$shots"/*.png
rm -rf "$WORK"
