"""gc of the S3 artifact store (SeaweedFS) beside gc of the local default (a folder), in one run.

Run: python benchmarks/bench_team_gc.py [--blobs N] [--versions M]

Starts PostgreSQL and SeaweedFS with scripts/team-servers.sh (stopped at the end). Both stores
get the same N unreferenced small blobs and M registered model versions; gc runs with a grace
longer than the run (it scans everything and deletes nothing), then with no grace (it deletes
the N orphans). Figures: objects scanned per second, and orphans deleted per second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table, team_servers  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "team-servers.sh"



def _fill(ws: Workspace, root: Path, blobs: int, versions: int) -> int:
    """Orphans and registered versions; the number of blobs in the store."""
    for _ in range(blobs):
        ws.artifacts.put_bytes(os.urandom(256))
    for i in range(versions):
        f = root / f"m{i}.bin"
        f.write_bytes(os.urandom(1024))
        ws.models.create("m", f)
    return blobs + versions


def _gc_rates(ws: Workspace, scanned: int, orphans: int) -> tuple[float, float]:
    t = time.perf_counter()
    kept = ws.gc(older_than_s=86400.0)
    scan_s = time.perf_counter() - t
    assert not kept
    deadline = time.monotonic() + 30  # the server's clock counts whole seconds
    removed: list[str] = []
    t = time.perf_counter()
    while len(removed) < orphans and time.monotonic() < deadline:
        removed += ws.gc(older_than_s=0.0)
    delete_s = time.perf_counter() - t
    return scanned / scan_s, len(removed) / delete_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blobs", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=50)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlws-bench-gc-"))
    servers = Path(tempfile.mkdtemp(prefix="mlws-bench-gc-servers-"))
    try:
        store_uri = team_servers(servers)
        team = Workspace.init(root / "team", store_uri=store_uri,
                              artifact_uri=f"s3://mlws/bench-gc-{os.getpid()}")
        local = Workspace.init(root / "local")
        rates = {}
        for name, ws in (("team", team), ("local", local)):
            n = _fill(ws, root, args.blobs, args.versions)
            rates[name] = _gc_rates(ws, n, args.blobs)
            ws.close()
        rows = [
            (f"gc scan, {args.blobs + args.versions} blobs (objects/s)",
             f"{rates['team'][0]:.0f} (S3)", f"{rates['local'][0]:.0f} (folder)", "-", "-"),
            (f"gc delete, {args.blobs} orphans (objects/s)",
             f"{rates['team'][1]:.0f} (S3)", f"{rates['local'][1]:.0f} (folder)", "-", "-"),
        ]
    finally:
        subprocess.run(["bash", str(SCRIPT), "down", str(servers)], capture_output=True,
                       timeout=120)
        shutil.rmtree(servers, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
