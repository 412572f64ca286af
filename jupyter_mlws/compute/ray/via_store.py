"""Ray jobs without a shared filesystem: the job's files travel through the artifact store.

With a remote artifact store (``artifact_uri``) and no ``settings.shared_paths``, the submitting
side stores the job's folder (code snapshot, inputs, notebook; content-addressed, so the blobs
of the snapshot and of registered inputs are reused, not uploaded again) as a tree, and the Ray
entrypoint is :mod:`jupyter_mlws.compute.ray.worker`: it lays the tree out in a private temp
folder on the node (each blob verified by its sha256), runs the job there, and stores what the
job wrote (outputs, ``run/``, the notebook's output and report, ``logs/user``) as a tree again.
When the Ray job ends, :func:`fetch_results` lays that tree out in the job's local folder.

The S3 endpoint and credentials (the standard ``AWS_*`` variables of the submitting process)
never go into what the Ray dashboard shows (entrypoint, runtime env, metadata, logs): they travel
in a per-job keys package (:func:`keys_package`: a randomly named ``gcs://`` package uploaded
through the dashboard's package API, which says whether a package exists but never serves it)
listed in the job's ``py_modules``. The worker reads it, deletes the node's copy and the
cluster's, and only then starts the job's process, which never sees the variables.

The package also holds a per-job result key: the worker's result line carries an HMAC of the
tree (:func:`result_mac`) and the submitter takes the last line that verifies, so a job that
prints a result line of its own cannot make the submitter lay out another tree.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import zipfile
from pathlib import Path
from typing import Any

from jupyter_mlws.artifacts import ArtifactStore
from jupyter_mlws.errors import UnsafePathError, ValidationError
from jupyter_mlws.jobs.paths import JobPaths

SPEC_VAR = "MLWS_RAY_JOB"
#: Keys of the job's spec naming the trees sent and returned (committed references for gc).
SENT_KEY = "ray_sent_tree"
RESULT_KEY = "ray_result_tree"
#: Key of the job's spec holding its result key, encrypted with :class:`~jupyter_mlws.crypto.SecretBox`.
RESULT_KEY_KEY = "ray_result_key"
#: What the worker sends back, in its log, once the job's process has ended.
RESULT_LINE = "[mlws] the job's files are stored in the artifact store as tree"
_RESULT_RE = re.compile(re.escape(RESULT_LINE) + r" ([0-9a-f]{64}) ([0-9a-f]{64})\s*$",
                        re.MULTILINE)
#: The job's keys package: its name's prefix and the one file in it.
KEYS_PREFIX = "_mlws_keys_"
KEYS_FILE = "mlws_job_keys.json"
#: The job's folders sent to the node, and those brought back from it.
SENT = ("code", "inputs", "notebook", "run", "outputs")
RETURNED = ("outputs", "run", "notebook", "logs/user")
#: Variables the worker needs to reach the store (names only; values come from this process).
STORE_VARS_PREFIX = "AWS_"
STORE_VARS = ("MLWS_ARTIFACT_TIMEOUT",)


def store_env() -> dict[str, str]:
    """The standard S3 variables of this process (endpoint, keys, region, profile)."""
    return {k: v for k, v in os.environ.items()
            if k.startswith(STORE_VARS_PREFIX) or k in STORE_VARS}


def check_inputs(launch: Any, paths: JobPaths, compute_name: str) -> None:
    """Inputs must be in the job's folder (registered data and models are copied there)."""
    root = Path(os.path.realpath(paths.root))
    for mount in launch.mounts:
        real = Path(os.path.realpath(str(mount)))
        if "://" not in str(mount) and real != root and root not in real.parents:
            raise ValidationError(
                f"The input {str(mount)!r} is a path on this machine, which the nodes of the "
                f"Ray compute {compute_name!r} cannot read (it has no shared_paths; the job's "
                "files go through the artifact store).",
                hint="Register the input as data (it is then stored and sent with the job), or "
                "list a path every node mounts in the compute's settings.shared_paths.")


def _walk(root: Path, top: Path) -> tuple[list[tuple[str, Path]], list[str], list[list[str]]]:
    """Regular files, folders and links (those that stay in ``root``: the ``outputs``/``logs``
    of the working folder) under ``top``, relative to ``root``; no link is followed."""
    files: list[tuple[str, Path]] = []
    dirs: list[str] = []
    links: list[list[str]] = []
    real_root = Path(os.path.realpath(root))
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        base = Path(dirpath)
        dirs.append(base.relative_to(root).as_posix())
        for name in [*dirnames, *filenames]:
            full = base / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                target = Path(os.path.realpath(full))
                text = os.readlink(full)
                if (target == real_root or real_root in target.parents) and not \
                        os.path.isabs(text):
                    links.append([rel, text])
            elif name in filenames and full.is_file():
                files.append((rel, full))
    return files, dirs, links


def send_job_folder(artifacts: ArtifactStore, paths: JobPaths
                    ) -> tuple[str, list[str], list[list[str]]]:
    """Store what the node needs of the job's folder; ``(tree sha256, folders to make, links
    to make)``."""
    files: list[list[Any]] = []
    dirs: list[str] = ["logs/user"]
    links: list[list[str]] = []
    with artifacts.session() as session:
        for sub in SENT:
            if not (paths.root / sub).is_dir():
                continue
            found, more_dirs, more_links = _walk(paths.root, paths.root / sub)
            dirs += more_dirs
            links += more_links
            for rel, full in found:
                sha, size = artifacts.put_file(full, session)
                files.append([rel, sha, size, os.access(full, os.X_OK)])
        files.sort(key=lambda f: f[0])
        manifest = json.dumps({"files": files}, separators=(",", ":")).encode()
        tree = artifacts.put_bytes(manifest, session)
    return tree, sorted(set(dirs)), links


def worker_spec(*, uri: str, tree: str, dirs: list[str], links: list[list[str]],
                paths: JobPaths, argv: list[str], cwd: str, keys: str,
                job_vars: list[str]) -> str:
    """The worker's instructions (no secrets: ``keys`` names the keys package, a random name;
    ``job_vars`` the store's variable names the job's own environment sets)."""
    return json.dumps({"uri": uri, "tree": tree, "dirs": dirs, "links": links,
                       "root": str(paths.root), "argv": argv, "cwd": cwd, "keys": keys,
                       "job_vars": sorted(job_vars)}, separators=(",", ":"))


def new_result_key() -> bytes:
    return secrets.token_bytes(32)


def keys_package(store_vars: dict[str, str], result_key: bytes) -> tuple[str, bytes]:
    """``(gcs package name, zip bytes)`` of a job's keys: the store's variables and the result
    key. The name is random (nothing in it derives from the keys)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(KEYS_FILE, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o600 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, json.dumps({"env": store_vars, "result_key": result_key.hex()}))
    return f"{KEYS_PREFIX}{secrets.token_hex(16)}.zip", buf.getvalue()


def result_mac(key: bytes, tree: str) -> str:
    """The worker's proof that it stored ``tree`` (an HMAC-SHA256 with the job's result key)."""
    return hmac.new(key, b"mlws-ray-result\0" + tree.encode(), hashlib.sha256).hexdigest()


def result_line(key: bytes, tree: str) -> str:
    return f"{RESULT_LINE} {tree} {result_mac(key, tree)}"


def result_tree(log_text: str, key: bytes) -> str | None:
    """The tree of the last result line in the Ray job's log that ``key`` authenticates (lines
    the job printed itself do not), if any."""
    found = None
    for tree, mac in _RESULT_RE.findall(log_text):
        if hmac.compare_digest(mac, result_mac(key, tree)):
            found = tree
    return found


def fetch_results(artifacts: ArtifactStore, tree: str, paths: JobPaths) -> int:
    """Lay out what the worker stored (only the folders a job may write) in the job's folder;
    the number of files. Paths are checked (no ``..``), links are never written."""
    count = 0
    root = paths.root
    for rel, sha, _size, executable in artifacts.manifest(tree):
        if not any(rel == top or rel.startswith(top + "/") for top in RETURNED):
            continue
        dest = root / rel
        for parent in [dest, *dest.parents]:
            if parent == root:
                break
            if parent.is_symlink():
                raise UnsafePathError(f"{str(parent)!r} in the job's folder is a link.")
        artifacts.copy_blob(sha, dest, executable=executable)
        count += 1
    return count
