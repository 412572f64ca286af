#!/usr/bin/env bash
# Make sure the Docker engine runs and the curated offline base images exist (CI and dev machines).
# Usage: scripts/ensure-base-image.sh [IMAGE ...] [--force]     (default: all curated images)
# Environment: PYTHON (interpreter that can import jupyter_mlws and docker; default: python).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/docker-up.sh"
cd "$here/.."   # a source checkout is importable without installing it
py="${PYTHON:-$(command -v python || command -v python3)}"
exec "$py" -c 'from jupyter_mlws.environments.bootstrap import main; main()' "$@"
