"""A bounded, least-recently-used local copy of remote blobs.

Blobs are named by their sha256, so a cached copy is never stale: the cache only decides how
many bytes to keep. A download goes to a temp file, is hashed, and is renamed into place only
when the hash matches its name; a hit refreshes the file's mtime, and the oldest files go first
when the cache is over its bound.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from jupyter_mlws.artifacts.backends import BlobBackend
from jupyter_mlws.errors import ArtifactStoreUnavailableError
from jupyter_mlws.fileio import file_sha256

ENV_CACHE_MB = "MLWS_ARTIFACT_CACHE_MB"
DEFAULT_CACHE_MB = 5120


class BlobCache:
    """Cached blobs under ``folder`` (``<sha[:2]>/<sha[2:]>``), at most ``max_bytes``."""

    def __init__(self, folder: Path, tmp: Path, max_bytes: int) -> None:
        self.folder = folder
        self.tmp = tmp
        self.max_bytes = max_bytes
        self._total: int | None = None  # this process's running estimate of the cache's bytes

    def path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / sha256[2:]

    def hit(self, sha256: str) -> Path | None:
        """The cached copy (its use time refreshed), or None."""
        p = self.path(sha256)
        try:
            os.utime(p)
        except FileNotFoundError:
            return None
        return p

    def fetch(self, backend: BlobBackend, sha256: str) -> Path:
        """The cached copy, downloaded and verified first when missing."""
        p = self.hit(sha256)
        if p is not None:
            return p
        self.tmp.mkdir(parents=True, exist_ok=True)
        part = self.tmp / f"{uuid.uuid4().hex}.dl.part"
        try:
            backend.download(sha256, part)
            if file_sha256(part) != sha256:
                raise ArtifactStoreUnavailableError(
                    f"The blob {sha256[:12]} in the artifact store {backend.location} does not "
                    "hold what its name says.",
                    hint="It was changed outside jupyter_mlws; register the asset again.")
            return self.insert(part, sha256)
        finally:
            part.unlink(missing_ok=True)

    def insert(self, src: Path, sha256: str) -> Path:
        """Move a verified temp file into the cache, then trim the cache to its bound."""
        dest = self.path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = src.stat().st_size
        os.replace(src, dest)
        if self._total is None or self._total + size > self.max_bytes:
            self.trim(keep=dest)  # a full scan only when the estimate reaches the bound
        else:
            self._total += size
        return dest

    def trim(self, *, keep: Path | None = None) -> list[Path]:
        """Delete the least recently used files until the cache holds at most its bound."""
        entries: list[tuple[float, int, Path]] = []
        total = 0
        if not self.folder.exists():
            self._total = 0
            return []
        for sub in self.folder.iterdir():
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    st = f.stat()
                    entries.append((st.st_mtime, st.st_size, f))
                    total += st.st_size
        removed: list[Path] = []
        for _mtime, size, f in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if f == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                f.unlink()  # an open reader keeps its bytes (POSIX)
                removed.append(f)
            total -= size
        self._total = total
        return removed
