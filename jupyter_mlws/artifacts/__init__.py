"""Content-addressed storage of files and folders inside the workspace.

A file is stored once under ``blobs/<sha[:2]>/<sha[2:]>`` whatever its name. A folder is a
*tree*: a JSON manifest ``{"files": [[path, sha256, size, executable], ...]}`` sorted by path,
itself stored as a blob; the folder's sha256 is the manifest's. Writes go to a temporary file and
are renamed into place, so a blob that exists is complete.

Blobs are shared between versions, so nothing deletes one without the collection lock and a
look at the live pins of running registrations and at every committed reference (see
:mod:`jupyter_mlws.artifacts.guard`). A full disk gives :class:`DiskFullError`, never a partial
blob.

With a remote backend (``artifact_uri``: S3 or another fsspec URL, see
:mod:`jupyter_mlws.artifacts.backends`) the blobs live there and the local ``cache/`` folder is a
bounded read-through copy; the local folder keeps temp files, pins and job folders. Remote blobs
are never deleted by a rollback (other machines may be about to commit a reference to them;
their pins are not visible here); gc deletes them by the rules of
:mod:`jupyter_mlws.artifacts.remote_gc`, safe with writers on many machines.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, Literal, Protocol

import pathspec

from jupyter_mlws.artifacts import remote_gc
from jupyter_mlws.artifacts.backends import BlobBackend
from jupyter_mlws.artifacts.cache import BlobCache, file_sha256
from jupyter_mlws.artifacts.guard import BlobGuard, PutSession
from jupyter_mlws.artifacts.stat_cache import StatCache
from jupyter_mlws.errors import (
    DiskFullError,
    NotFoundError,
    UnsafePathError,
    ValidationError,
)
from jupyter_mlws.fileio import is_disk_full

__all__ = ["ArtifactStore", "PutSession", "StoredArtifact", "iter_folder", "is_disk_full"]

_BUF = 1 << 20


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(candidate).free
    return None


class ArtifactRecords(Protocol):
    """What the blob store needs of the metadata store to know which blobs are in use."""

    def all_artifact_specs(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class StoredArtifact:
    """What a registration records about the bytes it stored."""

    kind: Literal["file", "folder"]
    sha256: str
    size: int
    file_count: int
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sha256": self.sha256,
            "size": self.size,
            "file_count": self.file_count,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredArtifact:
        return cls(
            kind=data["kind"],
            sha256=data["sha256"],
            size=int(data["size"]),
            file_count=int(data.get("file_count", 1)),
            name=data["name"],
        )


def _safe_relpath(rel: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise UnsafePathError(f"The stored path {rel!r} would escape its folder.")
    return p.as_posix()


def iter_folder(
    root: Path, ignore: pathspec.PathSpec | None = None
) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, absolute path)`` of regular files under ``root``, sorted.

    Symlinks are followed only while they stay inside ``root``; one that leads out is refused,
    since its target is a place the user did not name.
    """
    root = root.resolve()
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            full = base / name
            rel = full.relative_to(root).as_posix()
            if ignore is not None and ignore.match_file(rel + "/"):
                dirnames.remove(name)
                continue
            if full.is_symlink():
                _check_inside(root, full, rel)
                dirnames.remove(name)
                # a symlinked folder inside root: walk its target under the link's name
                for sub_rel, sub_abs in iter_folder(full.resolve(), None):
                    out.append((f"{rel}/{sub_rel}", sub_abs))
        for name in filenames:
            full = base / name
            rel = full.relative_to(root).as_posix()
            if ignore is not None and ignore.match_file(rel):
                continue
            if full.is_symlink():
                _check_inside(root, full, rel)
                full = full.resolve()
            if full.is_file():
                out.append((rel, full))
    out.sort(key=lambda item: item[0])
    yield from out


def _check_inside(root: Path, link: Path, rel: str) -> None:
    target = link.resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError(
            f"{rel!r} in {str(root)!r} is a symlink to {str(target)!r}, outside the folder.",
            hint="Copy the file into the folder or name its real location directly.",
        )


class ArtifactStore:
    """The workspace's blob store (one folder, shared by every asset kind and job)."""

    def __init__(
        self, root: Path, remote: BlobBackend | None = None, cache_bytes: int = 5 << 30
    ) -> None:
        self.root = Path(root)
        self.remote = remote
        self.blobs = self.root / ("cache" if remote is not None else "blobs")
        self.tmp = self.root / "tmp"
        self.guard = BlobGuard(self.root)
        self.cache = BlobCache(self.blobs, self.tmp, cache_bytes)

    @property
    def location(self) -> str:
        """Where the blobs are, for messages and ``workspace show`` (no credentials)."""
        return self.remote.location if self.remote is not None else str(self.root)

    def ensure(self) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _local(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValidationError(f"{sha256!r} is not a sha256 digest.")
        return self.blobs / sha256[:2] / sha256[2:]

    def blob_path(self, sha256: str) -> Path:
        """A local file holding the blob's bytes (remote: fetched into the cache first). The
        path does not exist when the blob is not stored."""
        local = self._local(sha256)
        if self.remote is None or local.exists() or not self.remote.exists(sha256):
            return local
        return self.cache.fetch(self.remote, sha256)

    def has(self, sha256: str) -> bool:
        if self._local(sha256).exists():
            return True
        return self.remote is not None and self.remote.exists(sha256)

    @contextlib.contextmanager
    def session(self) -> Iterator[PutSession]:
        """A put session for one registration: what it stores or reuses stays pinned (safe from
        gc and from other registrations' rollbacks) until the block ends."""
        with self._on_full(None, "a registration"):
            session = self.guard.open_session()
        try:
            yield session
            if self.remote is not None and session.remote_since is not None:
                remote_gc.confirm(self.remote, session.remote_since, set(session.pinned),
                                  self._store_again)
        finally:
            session.close()

    def _store_again(self, sha: str) -> bool:
        """Upload the local copy of ``sha`` again (a collector took the remote one); whether
        there was a copy whose bytes still hash to ``sha``."""
        assert self.remote is not None
        path = self.cache.hit(sha)
        if path is None or file_sha256(path) != sha:
            return False
        self.remote.upload(sha, path, path.stat().st_size)
        return True

    def _settle(self, sha: str, session: PutSession | None, *, reused: bool) -> bool:
        """:func:`remote_gc.settle`, the session's start kept for its confirmation."""
        assert self.remote is not None
        stored, since = remote_gc.settle(self.remote, sha, reused=reused)
        if session is not None and session.remote_since is None:
            session.remote_since = since
        return stored

    def referenced_by(self, records: ArtifactRecords) -> set[str]:
        """Every blob a committed record of ``records`` refers to (folders: their files too)."""
        refs = [StoredArtifact.from_dict(a) for a in records.all_artifact_specs()]
        return self.referenced_blobs(refs)

    # --- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _on_full(self, needed: int | None, what: str) -> Iterator[None]:
        """Turn "no space left" below into :class:`DiskFullError` naming the store's folder."""
        try:
            yield
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise DiskFullError(
                str(self.root), needed=needed, free=_free_bytes(self.root), what=what
            ) from None

    def _new_part(self) -> tuple[Path, IO[bytes]]:
        """A temp file, created and locked under the shared lock (gc leaves it alone)."""
        self.ensure()
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        with self.guard.shared():
            f = open(tmp, "xb")  # noqa: SIM115 - the caller closes it
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        return tmp, f

    def _commit_tmp(self, tmp: Path, sha: str, session: PutSession | None) -> None:
        if self.remote is not None:
            self._commit_remote(tmp, sha, session)
            return
        dest = self._local(sha)
        with self.guard.shared():
            if session is not None:
                session.pin(sha)
            if dest.exists():
                with contextlib.suppress(OSError):
                    os.utime(dest)  # in use again: gc's age grace starts anew
                tmp.unlink(missing_ok=True)
                return
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            if session is not None:
                session.created.append(dest)

    def _commit_remote(self, tmp: Path, sha: str, session: PutSession | None) -> None:
        """Upload a verified temp file under its content key (unless stored), then keep it in
        the cache. The upload is visible only once complete."""
        with self.guard.shared():
            if session is not None:
                session.pin(sha)
        assert self.remote is not None
        while True:  # stored anew when a collector of another machine took it meanwhile
            reused = self.remote.exists(sha)
            if not reused:
                self.remote.upload(sha, tmp, tmp.stat().st_size)
            if self._settle(sha, session, reused=reused):
                break
        if self.cache.hit(sha) is None:
            self.cache.insert(tmp, sha)

    def _reuse(self, sha: str, session: PutSession | None) -> bool:
        """Pin ``sha`` and say whether it is stored already."""
        dest = self._local(sha)
        if self.remote is not None:  # (a cached copy says nothing of the remote one)
            with self.guard.shared():
                if session is not None:
                    session.pin(sha)
            return self.remote.exists(sha) and self._settle(sha, session, reused=True)
        with self.guard.shared():
            if session is not None:
                session.pin(sha)
            if not dest.exists():
                return False
            with contextlib.suppress(OSError):
                os.utime(dest)
            return True

    def put_bytes(self, data: bytes, session: PutSession | None = None) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with self._on_full(len(data), "a manifest"):
            if self._reuse(sha, session):
                return sha
            tmp, f = self._new_part()
            try:
                with f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                    self._commit_tmp(tmp, sha, session)
            finally:
                tmp.unlink(missing_ok=True)
        return sha

    def put_file(self, src: Path, session: PutSession | None = None, *,
                 opener: Callable[[Path], BinaryIO] | None = None) -> tuple[str, int]:
        """Copy one file in (hashing while copying); return ``(sha256, size)``. ``opener``
        opens ``src`` (e.g. without following links, for a file a job wrote)."""
        h = hashlib.sha256()
        size = 0
        with self._on_full(Path(src).stat().st_size, f"storing {src.name!r}"):
            tmp, fout = self._new_part()
            try:
                with (opener(Path(src)) if opener else open(src, "rb")) as fin, fout:
                    while chunk := fin.read(_BUF):
                        h.update(chunk)
                        fout.write(chunk)
                        size += len(chunk)
                    fout.flush()
                    os.fsync(fout.fileno())
                    sha = h.hexdigest()
                    self._commit_tmp(tmp, sha, session)
            finally:
                tmp.unlink(missing_ok=True)
        return sha, size

    def put_path(
        self,
        src: Path,
        *,
        ignore: pathspec.PathSpec | None = None,
        session: PutSession | None = None,
        stat_cache: StatCache | None = None,
    ) -> StoredArtifact:
        """Store a file or a folder; the same bytes are stored once.

        Without a ``session`` the blobs are pinned only while this call runs. With a
        ``stat_cache``, a file of a folder whose stat is unchanged and whose blob is stored
        already is neither read nor copied again.
        """
        src = Path(src)
        if not src.exists():
            raise NotFoundError(f"{str(src)!r} does not exist.", hint="Check the path.")
        if session is None:
            with self.session() as own:
                return self.put_path(src, ignore=ignore, session=own, stat_cache=stat_cache)
        if src.is_file():
            sha, size = self.put_file(src, session)
            return StoredArtifact("file", sha, size, 1, src.name)
        listed = list(iter_folder(src, ignore))
        files = []
        total = 0
        try:
            for rel, full in listed:
                sha, size, executable = self._put_cached(full, session, stat_cache)
                files.append([rel, sha, size, executable])
                total += size
            manifest = json.dumps({"files": files}, separators=(",", ":")).encode()
            tree_sha = self.put_bytes(manifest, session)
        except DiskFullError:
            needed = sum(full.stat().st_size for _rel, full in listed)
            raise DiskFullError(
                str(self.root), needed=needed, free=_free_bytes(self.root),
                what=f"storing the folder {src.name!r} ({len(listed)} files)",
            ) from None
        return StoredArtifact("folder", tree_sha, total, len(files), src.resolve().name)

    def _put_cached(self, full: Path, session: PutSession | None,
                    cache: StatCache | None) -> tuple[str, int, bool]:
        """Store one file of a folder: ``(sha256, size, executable)``; the stat cache spares
        reading a file that has not changed since it was stored."""
        st = full.stat()
        executable = bool(st.st_mode & stat.S_IXUSR)
        if cache is None:
            sha, size = self.put_file(full, session)
            return sha, size, executable
        known = cache.lookup(full, st)
        if known is not None and self._reuse(known, session):
            return known, st.st_size, executable
        hashed_at = time.time_ns()
        sha, size = self.put_file(full, session)
        if size == st.st_size:  # (a file that grew while read is hashed again next time)
            cache.record(full, st, sha, hashed_at)
        return sha, size, executable

    def snapshot(
        self, src: Path, dest: Path, *, ignore: pathspec.PathSpec | None = None,
        stat_cache: StatCache | None = None,
    ) -> StoredArtifact:
        """Store ``src`` and lay a copy out at ``dest`` while its blobs stay pinned (a job's
        code: gc cannot take the blobs between storing and copying out)."""
        with self.session() as session:
            stored = self.put_path(src, ignore=ignore, session=session, stat_cache=stat_cache)
            self.materialize(stored, dest)
        if stat_cache is not None:
            stat_cache.save()
        return stored

    # --- deleting (only under the exclusive lock) -------------------------------------------

    def rollback(self, session: PutSession, *, referenced: Callable[[], set[str]]) -> list[str]:
        """Take back the blobs a failed registration wrote, except those that a committed
        record (``referenced()``) or another running registration (its pins) uses."""
        removed: list[str] = []
        if not session.created:
            return removed
        with self.guard.exclusive():
            keep = self.guard.live_pins(exclude=session)
            try:
                keep |= referenced()
            except Exception:  # noqa: BLE001 - cannot tell what is used: delete nothing
                return removed  # (gc takes what is left once the store answers again)
            for path in reversed(session.created):
                sha = path.parent.name + path.name
                if sha in keep:
                    continue
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(sha)
        session.created.clear()
        return removed

    def garbage_collect(
        self,
        referenced: Callable[[], set[str]],
        *,
        older_than_s: float = 3600.0,
        now: Callable[[], float] | None = None,
    ) -> list[str]:
        """Delete blobs that no committed record (``referenced()``, read under the lock) and no
        running registration uses, and that were last written or reused ``older_than_s`` ago or
        more; and temp files no writer holds."""
        removed: list[str] = []
        with self.guard.exclusive():
            if self.remote is not None:  # other machines' writers: see remote_gc
                removed = remote_gc.collect(
                    self.remote, lambda: self.guard.live_pins() | referenced(),
                    older_than_s=older_than_s)
            keep = self.guard.live_pins()  # the pins first, then the committed references
            keep |= referenced() if self.remote is None else set()
            t = (now or time.time)()
            local_blobs = self.blobs.exists() and self.remote is None
            for sub in self.blobs.iterdir() if local_blobs else []:
                for blob in sub.iterdir():
                    sha = sub.name + blob.name
                    if sha in keep:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if t - blob.stat().st_mtime >= older_than_s:
                            blob.unlink()
                            removed.append(sha)
            for part in self.tmp.glob("*.part") if self.tmp.exists() else []:  # and downloads
                with contextlib.suppress(FileNotFoundError):
                    stale = t - part.stat().st_mtime >= older_than_s
                    if stale and not self.guard.part_in_use(part):
                        part.unlink()
        return removed

    # --- reading ---------------------------------------------------------------------------

    def manifest(self, tree_sha: str) -> list[tuple[str, str, int, bool]]:
        path = self.blob_path(tree_sha)
        if not path.exists():
            raise NotFoundError(f"The folder {tree_sha[:12]} is missing from the artifact store.")
        data = json.loads(path.read_text())
        return [(_safe_relpath(r), s, int(n), bool(x)) for r, s, n, x in data["files"]]

    def materialize(self, artifact: StoredArtifact, dest: Path) -> Path:
        """Write the stored bytes to ``dest`` (a file path, or a folder for a tree)."""
        dest = Path(dest)
        try:
            if artifact.kind == "file":
                self._copy_out(artifact.sha256, dest, executable=False)
                return dest
            dest.mkdir(parents=True, exist_ok=True)
            for rel, sha, _size, executable in self.manifest(artifact.sha256):
                self._copy_out(sha, dest / rel, executable=executable)
        except OSError as exc:  # the destination, not the store (a full disk is said above)
            raise ValidationError(
                f"Cannot write {str(dest)!r}: {exc.strerror or exc}"
                + (f" ({exc.filename})." if exc.filename else "."),
                hint="Give a destination folder that exists or can be made, and that you may "
                "write to.",
            ) from None
        return dest

    def copy_blob(self, sha: str, dest: Path, *, executable: bool = False) -> None:
        """Write one blob's bytes to ``dest`` (replaced whole; remote: verified on download)."""
        self._copy_out(sha, dest, executable=executable)

    def _copy_out(self, sha: str, dest: Path, *, executable: bool) -> None:
        src = self.blob_path(sha)
        if not src.exists():
            raise NotFoundError(
                f"The blob {sha[:12]} is missing from the artifact store {self.location}.")
        tmp = None
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".mlws-", suffix=".part")
            os.close(fd)
            try:
                shutil.copyfile(src, tmp)
            except FileNotFoundError:
                if self.remote is None:
                    raise
                shutil.copyfile(self.blob_path(sha), tmp)  # evicted from the cache meanwhile
            if executable:
                os.chmod(tmp, 0o755)
            os.replace(tmp, dest)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(
                    str(dest.parent), needed=src.stat().st_size, free=_free_bytes(dest.parent),
                    what=f"writing {dest.name!r}",
                ) from None
            raise
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def referenced_blobs(self, artifacts: list[StoredArtifact]) -> set[str]:
        keep: set[str] = set()
        for art in artifacts:
            keep.add(art.sha256)
            if art.kind == "folder" and self.has(art.sha256):
                keep.update(sha for _r, sha, _n, _x in self.manifest(art.sha256))
        return keep
