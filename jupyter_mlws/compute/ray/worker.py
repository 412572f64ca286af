"""The Ray entrypoint of a job whose files go through the artifact store (see
:mod:`jupyter_mlws.compute.ray.via_store`): ``python -m jupyter_mlws.compute.ray.worker``.

It reads its instructions from ``$MLWS_RAY_JOB``, lays the job's folder out in a private temp
folder of the node (every blob verified by its sha256), runs the job's command there with the
job folder's paths rewritten to that copy, stores what the job wrote as a tree, reports the tree
in its log, removes the temp folder and exits with the job's exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CACHE_BYTES = 1 << 30


def _upload_results(store: Any, root: Path) -> str:
    """Store the folders a job may write, opened without following any link the job made."""
    from jupyter_mlws.compute.ray.via_store import RETURNED
    from jupyter_mlws.errors import UnsafePathError
    from jupyter_mlws.jobs.safe_files import open_job_file
    from jupyter_mlws.jobs.team_files import _job_files

    files: list[list[Any]] = []
    with store.session() as session:
        for top in RETURNED:
            base = root / top
            if base.is_symlink() or not base.is_dir():
                continue
            for rel, full in _job_files(base):
                try:
                    sha, size = store.put_file(full, session,
                                               opener=lambda p: open_job_file(p, root))
                except (UnsafePathError, FileNotFoundError):
                    continue  # swapped for a link since the walk: left out
                files.append([f"{top}/{rel}", sha, size,
                              bool(os.lstat(full).st_mode & 0o100)])
        manifest = json.dumps({"files": sorted(files)}, separators=(",", ":")).encode()
        return str(store.put_bytes(manifest, session))


def _run(argv: list[str], cwd: str, env: dict[str, str]) -> int:
    """Run the job; a stop request (SIGTERM/SIGINT) is passed on to it."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env)

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    code = proc.wait()
    return 128 - code if code < 0 else code


def main() -> int:
    from jupyter_mlws.artifacts import ArtifactStore, StoredArtifact
    from jupyter_mlws.artifacts.backends import open_backend
    from jupyter_mlws.compute.ray.via_store import RESULT_LINE, SPEC_VAR

    spec = json.loads(os.environ.pop(SPEC_VAR))
    base = Path(tempfile.mkdtemp(prefix="mlws-ray-job-"))
    try:
        store = ArtifactStore(base / "store", remote=open_backend(spec["uri"]),
                              cache_bytes=CACHE_BYTES)
        root = base / "job"
        store.materialize(StoredArtifact("folder", spec["tree"], 0, 0, "job"), root)
        for rel in spec["dirs"]:
            (root / rel).mkdir(parents=True, exist_ok=True)
        for rel, text in spec["links"]:  # cwd/outputs -> the job's outputs (relative links)
            link = root / rel
            if not link.exists() and not link.is_symlink():
                link.symlink_to(text)
        old, new = spec["root"], str(root)

        def moved(text: str) -> str:
            return text.replace(old, new)

        env = {k: moved(v) for k, v in os.environ.items() if k not in spec["store_vars"]}
        print(f"[mlws] the job runs in {new} on {socket.gethostname()}", flush=True)
        code = _run([moved(a) for a in spec["argv"]], moved(spec["cwd"]), env)
        tree = _upload_results(store, root)
        print(f"{RESULT_LINE} {tree}", flush=True)
        return code
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
