"""A finished job's files (outputs, logs, output notebook) for the other machines of a team.

With a remote artifact store, the runner stores the job's folder as a tree there when the job
ends (:func:`publish`) and records the tree in the job's spec (``files_tree``). Another machine
lays that tree out as its own copy of the job folder the first time it asks for the job's paths
(:class:`TeamJobFiles`), so logs, outputs, downloads and ``mlws://jobs/...`` inputs read it as
they read a local job. The job wrote those files: symlinks and special files are left out, never
followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.artifacts import StoredArtifact
from jupyter_mlws.errors import NotFoundError, UnsafePathError
from jupyter_mlws.jobs import hosts, log_parts
from jupyter_mlws.jobs.logs import LOG_CHUNK_BYTES
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.queries import JobQueries
from jupyter_mlws.jobs.safe_files import open_job_file

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace

TREE_KEY = "files_tree"
_SKIP_SUFFIXES = (".lock", ".pid")


def _job_files(root: Path) -> list[tuple[str, Path]]:
    """Regular files under ``root``, without following any link the job made."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
        for name in filenames:
            full = base / name
            if name.endswith(_SKIP_SUFFIXES):
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(full).st_mode):
                    out.append((full.relative_to(root).as_posix(), full))
    return sorted(out)


def publish(ws: Workspace, job_id: str, root: Path | None = None) -> str | None:
    """Store a finished job's folder (``root``, by default its folder in ``ws``) in a remote
    artifact store; return the tree's sha256 (None for a workspace without one)."""
    if ws.artifacts.remote is None:
        return None
    root = root or JobPaths.of(ws.artifacts.root, job_id).root
    files = []
    total = 0
    with ws.artifacts.session() as session:
        for rel, full in _job_files(root):
            try:  # opened without following links: one swapped in since the walk is skipped
                sha, size = ws.artifacts.put_file(
                    full, session, opener=lambda p: open_job_file(p, root))
            except (UnsafePathError, FileNotFoundError):
                continue
            files.append([rel, sha, size, bool(os.lstat(full).st_mode & stat.S_IXUSR)])
            total += size
        manifest = json.dumps({"files": files}, separators=(",", ":")).encode()
        tree = ws.artifacts.put_bytes(manifest, session)
        job = ws.store.get_job(job_id)
        ws.store.update_job(job_id, spec={**job.spec, TREE_KEY: tree})
    return tree


def fetch(ws: Workspace, job_id: str, root: Path) -> bool:
    """Lay out the published files of another machine's job at ``root`` (once)."""
    job = ws.store.get_job(job_id)
    tree = job.spec.get(TREE_KEY)
    if not isinstance(tree, str) or not hosts.runs_elsewhere(job.spec, ws.path):
        return False
    tmp = root.parent / f".{root.name}.{uuid.uuid4().hex}.part"
    try:
        ws.artifacts.materialize(StoredArtifact("folder", tree, 0, 0, root.name), tmp)
        try:
            os.rename(tmp, root)
        except OSError:
            return root.exists()  # another reader laid it out first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


class TeamJobFiles(JobQueries):
    """``paths()`` that first fetches the files of a job another machine ran, and the logs of a
    job running on another machine read live from its published parts."""

    _ws: Any

    def paths(self, job_id: str) -> JobPaths:
        paths = super().paths(job_id)
        if self._ws.artifacts.remote is not None and not paths.root.exists():
            with contextlib.suppress(NotFoundError):  # an unknown id: said by the caller
                paths.root.parent.mkdir(parents=True, exist_ok=True)
                fetch(self._ws, job_id, paths.root)
        return paths

    @property
    def shared(self) -> bool:
        """Whether several machines may run this workspace's jobs (a team workspace: a shared
        store or a remote artifact store), so listings show each job's host and creator."""
        return hosts.is_team(self._ws)

    def _remote_log(self, job_id: str) -> tuple[Any, log_parts.ObjectStore | None]:
        """The job and, when another machine runs it, the store holding its log parts."""
        remote = self._ws.artifacts.remote
        if remote is None:
            return None, None
        job = self.get(job_id)
        if not hosts.runs_elsewhere(job.spec, self._ws.path) or not hasattr(remote, "get_object"):
            return job, None
        return job, remote

    def read_log(self, job_id: str, offset: int = 0, *, max_bytes: int | None = None
                 ) -> dict[str, Any]:
        job, remote = self._remote_log(job_id)
        if remote is None:
            return super().read_log(job_id, offset, max_bytes=max_bytes)
        return log_parts.read_log(remote, job, offset, max_bytes or LOG_CHUNK_BYTES, TREE_KEY)

    def logs(self, job_id: str, *, tail: int | None = None) -> str:
        job, remote = self._remote_log(job_id)
        if remote is None or TREE_KEY in job.spec:  # ended and published: its own files
            return super().logs(job_id, tail=tail)
        text = log_parts.read_all(remote, job.id).decode("utf-8", errors="replace")
        return text if tail is None else "\n".join(text.splitlines()[-tail:])

    def read_log_tail(self, job_id: str, lines: int) -> dict[str, Any]:
        job, remote = self._remote_log(job_id)
        if remote is None:
            return super().read_log_tail(job_id, lines)
        data = log_parts.read_all(remote, job.id)
        text = "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])
        done = log_parts.read_log(remote, job, len(data), 1, TREE_KEY)["done"]
        return {"text": text, "offset": len(data), "done": done}
