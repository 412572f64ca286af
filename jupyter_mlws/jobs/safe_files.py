"""Reading what a job wrote without following the links it may have left there.

Everything under a job's folder may have been written by the job, so the host treats it as
untrusted: a symlink there (``logs/job.log -> /etc/shadow``) or a FIFO must never make the host
read, copy or reveal something else. Files are opened component by component from the job's
root with ``O_NOFOLLOW`` (no check-then-open race), and only regular files are read.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO

from jupyter_mlws.errors import UnsafePathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)


def _unsafe(path: Path, why: str) -> UnsafePathError:
    return UnsafePathError(
        f"Refused to read {str(path)!r}: {why}. A job wrote it, and the host does not follow "
        "links out of (or special files in) a job's folder.",
        hint="Have the job write real files (copy the content instead of linking to it).")


def _parts(root: Path, path: Path) -> tuple[str, ...]:
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        raise _unsafe(path, f"it is not inside the job folder {str(root)!r}") from None
    if not rel.parts or any(p in ("..", ".") for p in rel.parts):
        raise _unsafe(path, "it does not name a file inside the job folder")
    return rel.parts


def _open_parent(root: Path | None, path: Path) -> tuple[int, str]:
    """An fd of ``path``'s folder reached without following links below ``root``; the name."""
    path = Path(path)
    if root is None:
        return os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path.name
    parts = _parts(Path(root), path)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for i, part in enumerate(parts[:-1]):
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS:
                raise _unsafe(path, f"{'/'.join(parts[:i + 1])!r} is a link or not a "
                                    "folder") from None
            raise
        finally:
            os.close(fd)
        fd = nxt
    return fd, parts[-1]


def open_job_file(path: Path, root: Path | None = None) -> BinaryIO:
    """Open a file a job wrote, for reading.

    Refuses (:class:`UnsafePathError`) a symlink at any component below ``root`` (at the last
    component only when ``root`` is not given) and anything but a regular file. A missing file
    raises FileNotFoundError as ``open`` does.
    """
    parent, name = _open_parent(root, Path(path))
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise _unsafe(Path(path), "it is a symbolic link") from None
        raise
    finally:
        os.close(parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _unsafe(Path(path), "it is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def job_file_size(path: Path, root: Path | None = None) -> int:
    """The size of a job-written regular file; 0 when it is missing or unsafe to read."""
    try:
        with open_job_file(path, root) as f:
            return os.fstat(f.fileno()).st_size
    except (OSError, UnsafePathError):
        return 0


def read_job_bytes(path: Path, root: Path | None = None) -> bytes:
    """The whole content of a job-written file (see :func:`open_job_file`)."""
    with open_job_file(path, root) as f:
        return f.read()


def read_job_json(path: Path, root: Path | None = None) -> dict[str, Any]:
    """A JSON object a job wrote (a runner's report); ``{}`` when missing, unsafe or invalid."""
    try:
        data = json.loads(read_job_bytes(path, root))
    except (OSError, UnsafePathError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_job_path(path: Path, root: Path) -> Path:
    """``path`` itself, once no component of it below ``root`` is a symlink (else
    :class:`UnsafePathError`); FileNotFoundError when it does not exist."""
    parent, name = _open_parent(root, Path(path))
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)
    if stat.S_ISLNK(st.st_mode):
        raise _unsafe(Path(path), "it is a symbolic link")
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise _unsafe(Path(path), "it is not a regular file or folder")
    return Path(path)


def open_log_for_append(path: Path) -> BinaryIO:
    """Open the host's own log file for appending, refusing a symlink put in its place."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    return os.fdopen(fd, "ab", buffering=0)


def copy_job_tree(src: Path, dest: Path, root: Path) -> list[str]:
    """Copy the folder ``src`` of a job into ``dest`` without following any link.

    Symlinks (wherever they point) and special files are skipped, never followed; regular files
    are copied with their permission bits. Returns the skipped paths, relative to ``src``.
    """
    if Path(src) == Path(root):
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        parent, name = _open_parent(root, Path(src))
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS:
                raise _unsafe(Path(src), "it is a link or not a folder") from None
            raise
        finally:
            os.close(parent)
    skipped: list[str] = []
    try:
        _copy_dir(fd, Path(dest), "", skipped)
    finally:
        os.close(fd)
    return skipped


def _copy_dir(dir_fd: int, dest: Path, rel: str, skipped: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with os.scandir(dir_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        sub = f"{rel}{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                fd = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    _copy_dir(fd, dest / entry.name, sub + "/", skipped)
                finally:
                    os.close(fd)
            elif entry.is_file(follow_symlinks=False):
                _copy_file(dir_fd, entry.name, dest / entry.name)
            else:
                skipped.append(sub)
        except OSError as exc:
            if exc.errno not in _LINK_ERRNOS:
                raise
            skipped.append(sub)  # swapped for a link while we looked
        except UnsafePathError:
            skipped.append(sub)


def _copy_file(dir_fd: int, name: str, dest: Path) -> None:
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _unsafe(dest, "it is not a regular file")
        os.set_blocking(fd, True)
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o644)
        with os.fdopen(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
            os.fchmod(dst.fileno(), stat.S_IMODE(st.st_mode) & 0o755)


def list_job_dir(path: Path, root: Path) -> list[tuple[str, bool]]:
    """``(name, is_folder)`` of the regular files and folders in a job-written folder.

    The folder is reached from ``root`` without following links; links and special files in it
    are left out. ``[]`` when it is missing, not a folder, or reached through a link.
    """
    try:
        if Path(path) == Path(root):
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            parent, name = _open_parent(root, Path(path))
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            finally:
                os.close(parent)
    except (OSError, UnsafePathError):
        return []
    try:
        with os.scandir(fd) as it:
            return sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it
                          if e.is_dir(follow_symlinks=False) or e.is_file(follow_symlinks=False))
    except OSError:
        return []
    finally:
        os.close(fd)


def walk_job_files(top: Path, root: Path, *, limit: int = 10_000) -> list[str]:
    """The regular files below the job-written folder ``top`` (relative ``a/b`` names), found
    without following any link; at most ``limit`` of them."""
    found: list[str] = []
    pending = [""]
    while pending and len(found) < limit:
        rel = pending.pop()
        for name, is_dir in list_job_dir(Path(top) / rel if rel else Path(top), root):
            sub = f"{rel}/{name}" if rel else name
            if is_dir:
                pending.append(sub)
            elif len(found) < limit:
                found.append(sub)
    return sorted(found)
