"""Where a registry keeps its files, behind one small interface.

A registry is a folder today (:class:`FolderStorage`); an ``s3://`` location comes with the team
workspace and is refused until then. What the catalogue needs of a location is only this: read
a small file, create one atomically (first writer wins), list a folder, and keep blobs by their
sha256 (written to a temporary name and renamed into place, so a blob that exists is complete).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Protocol

from jupyter_mlws.errors import RegistryCorruptError, RegistryLocationError
from jupyter_mlws.fileio import is_disk_full

_BUF = 1 << 20
_CLOUD_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "wasbs://",
                  "https://", "http://")


class RegistryStorage(Protocol):
    """The files of one registry (paths are ``/``-separated, relative to its root)."""

    location: str

    def exists(self) -> bool: ...

    def read(self, rel: str) -> bytes | None: ...

    def create(self, rel: str, data: bytes) -> bool: ...

    def replace(self, rel: str, data: bytes) -> None: ...

    def listdir(self, rel: str) -> list[str]: ...

    def has_blob(self, sha256: str) -> bool: ...

    def put_blob(self, sha256: str, src: Path) -> None: ...

    def blob_path(self, sha256: str) -> Path: ...

    def destroy(self) -> None: ...


def open_storage(location: str) -> RegistryStorage:
    """The storage at ``location`` (a folder); cloud URLs are refused with what to do."""
    text = location.strip()
    if text.lower().startswith(_CLOUD_SCHEMES):
        scheme = text.split("://", 1)[0]
        raise RegistryLocationError(
            f"A registry in {scheme}:// storage ({text!r}) is not supported yet: it comes with "
            "the team workspace.",
            hint="Give a folder (a shared network folder works for a team): "
            "`mlws registry create NAME --path DIR`.")
    if text.startswith("file://"):
        text = text[len("file://"):]
    if not text or "\x00" in text:
        raise RegistryLocationError("A registry needs a folder.",
                                    hint="Give it with --path DIR.")
    return FolderStorage(Path(text).expanduser().resolve())


def _check_rel(rel: str) -> str:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise RegistryCorruptError(f"{rel!r} is not a path inside a registry.")
    return rel


def _check_sha(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise RegistryCorruptError(f"{sha256!r} is not a sha256 digest.")
    return sha256


class FolderStorage:
    """A registry in a local (or network-mounted) folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def exists(self) -> bool:
        return self.root.is_dir()

    def _path(self, rel: str) -> Path:
        return self.root / _check_rel(rel)

    def read(self, rel: str) -> bytes | None:
        path = self._path(rel)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise RegistryCorruptError(f"Cannot read {str(path)!r}: {exc.strerror}.") from None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def _temp(self, folder: Path, data: bytes) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mlws-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return Path(tmp)

    def create(self, rel: str, data: bytes) -> bool:
        """Write ``rel`` only when it does not exist (atomically: the whole file or nothing);
        ``False`` when another writer made it first."""
        path = self._path(rel)
        tmp = self._temp(path.parent, data)
        try:
            os.link(tmp, path)  # fails when the file exists: the first writer wins
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return True

    def replace(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        tmp = self._temp(path.parent, data)
        os.replace(tmp, path)

    def listdir(self, rel: str) -> list[str]:
        path = self.root if rel in ("", ".") else self._path(rel)
        try:
            return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def blob_path(self, sha256: str) -> Path:
        sha = _check_sha(sha256)
        return self.root / "blobs" / sha[:2] / sha[2:]

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def put_blob(self, sha256: str, src: Path) -> None:
        """Copy ``src`` in as the blob ``sha256``, checking its bytes have that hash."""
        dest = self.blob_path(sha256)
        if dest.is_file():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{uuid.uuid4().hex}.part"
        h = hashlib.sha256()
        try:
            with open(src, "rb") as fin, open(tmp, "xb") as fout:
                while chunk := fin.read(_BUF):
                    h.update(chunk)
                    fout.write(chunk)
                fout.flush()
                os.fsync(fout.fileno())
            if h.hexdigest() != sha256:
                raise RegistryCorruptError(
                    f"The blob {sha256[:12]} of the workspace changed while it was shared.",
                    hint="Share again.")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)  # same bytes whoever wins: replacing is harmless
        except OSError as exc:
            if is_disk_full(exc):
                raise RegistryLocationError(
                    f"No space left in the registry folder {self.location!r}.",
                    hint="Free some space there and share again.") from None
            raise
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def destroy(self) -> None:
        shutil.rmtree(self.root)
