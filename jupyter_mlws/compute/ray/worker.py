"""The Ray entrypoint of a job whose files go through the artifact store (see
:mod:`jupyter_mlws.compute.ray.via_store`): ``python -m jupyter_mlws.compute.ray.worker``.

It reads its instructions from ``$MLWS_RAY_JOB`` and its keys (the store's variables and the
result key) from the job's keys package, which it deletes (the node's copy and the cluster's)
before anything else; it lays the job's folder out in a private temp folder of the node (every
blob verified by its sha256), runs the job's command there with the job folder's paths rewritten
to that copy and without the keys, stores what the job wrote as a tree, reports the tree in its
log with the tree's HMAC, removes the temp folder and exits with the job's exit code.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

CACHE_BYTES = 1 << 30
DROP_TIMEOUT_S = 120.0


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


def _take_keys(package: str) -> dict[str, Any]:
    """Read the keys file of ``package`` (a folder on the ``PYTHONPATH`` Ray made for it) and
    delete it: the job's process does not find it."""
    from jupyter_mlws.compute.ray.via_store import KEYS_FILE

    folder = package.removesuffix(".zip")
    entries = [*os.environ.get("PYTHONPATH", "").split(os.pathsep), *sys.path]
    found = [Path(e) / KEYS_FILE for e in entries if e and Path(e).name == folder]
    path = next((f for f in found if f.is_file()), None)
    if path is None:
        raise SystemExit(f"[mlws] the job's keys package {package} is not on this node's "
                         "PYTHONPATH (was it removed from the cluster before the job started?)")
    keys = dict(json.loads(path.read_text()))
    path.unlink()
    return keys


def _drop_from_cluster(package: str) -> None:
    """Delete the cluster's copy of the keys package (importing Ray's GCS client takes seconds:
    this runs while the job's folder is laid out, and the job starts once it is done)."""
    try:
        raylet = importlib.import_module("ray._raylet")  # the node's Ray runs this worker
        raylet.GcsClient(address=os.environ["RAY_ADDRESS"]).internal_kv_del(
            f"gcs://{package}".encode(), False, None)
    except Exception as exc:  # noqa: BLE001 - the job still runs; the log says what is left
        print(f"[mlws] warning: the job's keys package could not be removed from the cluster "
              f"({type(exc).__name__}); it expires with the job", flush=True)


#: Where Ray gives a job's driver its job config (runtime env), for its ``ray.init()``.
JOB_CONFIG_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def _job_env(env: dict[str, str], package: str) -> dict[str, str]:
    """The job's environment: the keys package is not in the runtime env its Ray tasks get."""
    with contextlib.suppress(KeyError, ValueError, TypeError, AttributeError):
        config = json.loads(env[JOB_CONFIG_VAR])
        runtime_env = config["runtime_env"]
        modules = [m for m in runtime_env.get("py_modules") or []
                   if not str(m).endswith("/" + package)]
        runtime_env["py_modules"] = modules
        if not modules:
            del runtime_env["py_modules"]
        env[JOB_CONFIG_VAR] = json.dumps(config)
    return env


def main() -> int:
    from jupyter_mlws.artifacts import ArtifactStore, StoredArtifact
    from jupyter_mlws.artifacts.backends import open_backend
    from jupyter_mlws.compute.ray.via_store import SPEC_VAR, result_line

    spec = json.loads(os.environ.pop(SPEC_VAR))
    keys = _take_keys(spec["keys"])
    dropping = threading.Thread(target=_drop_from_cluster, args=(spec["keys"],), daemon=True)
    dropping.start()
    # the job's process never gets the store's variables (a node's own of the same names
    # neither), only those the job's environment sets itself
    job_env = {k: v for k, v in os.environ.items()
               if k not in keys["env"] or k in spec.get("job_vars", ())}
    os.environ.update(keys["env"])  # for this process's S3 client only
    result_key = bytes.fromhex(keys["result_key"])
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

        env = _job_env({k: moved(v) for k, v in job_env.items()}, spec["keys"])
        dropping.join(timeout=DROP_TIMEOUT_S)
        if dropping.is_alive():
            print("[mlws] warning: removing the job's keys package from the cluster is taking "
                  f"over {DROP_TIMEOUT_S:.0f} s; the job starts anyway", flush=True)
        print(f"[mlws] the job runs in {new} on {socket.gethostname()}", flush=True)
        code = _run([moved(a) for a in spec["argv"]], moved(spec["cwd"]), env)
        tree = _upload_results(store, root)
        print("\n" + result_line(result_key, tree), flush=True)
        return code
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
