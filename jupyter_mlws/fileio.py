"""Small file helpers shared across the package (no imports from the rest of it)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o600, *,
                       durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically: readers see the old or the new file, whole.

    The temporary file has a unique name created exclusively in the same folder (so concurrent
    writers never share it, and a link planted there is never followed); it is given ``mode``,
    fsynced unless not ``durable`` (a cache, or a marker that need not outlive the machine's
    boot) and renamed over ``path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"), mode, durable=durable)


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=1, default=str), mode)


def human_size(n: Any) -> str:
    """A byte count as ``12 B``, ``3.4 MB``...; empty when it is not a number."""
    if not isinstance(n, int) or isinstance(n, bool):
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)  # pragma: no cover


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC or a full quota, SQLite's SQLITE_FULL or PostgreSQL's disk_full (53100)."""
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, OSError) and orig.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(orig).lower()
    return (
        "disk is full" in text
        or "no space left" in text
        or getattr(orig, "sqlstate", None) == "53100"
    )


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
