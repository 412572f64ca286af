"""The bytecode cache: the ``.pyc`` files of each installed distribution, kept by content, so a
venv rebuilt from a lock copies its bytecode instead of compiling it again.

Key of a distribution: sha256 over the sorted entries of its ``RECORD`` for the ``.py`` files
inside ``site-packages`` (path and the installer's recorded hash), the bytecode magic number of
the venv's interpreter, its optimization level, the invalidation mode and the skipped paths
(:data:`~.dockerfile.COMPILE_SKIP`). It is the same whichever installer (pip or uv) wrote the
``RECORD`` and wherever the wheel came from. A distribution with a ``.py`` file the ``RECORD``
gives no hash for is not kept (it is compiled in every build).

The bytecode is *checked-hash* (PEP 552): it does not depend on the files' mtimes (installers
set their own), and Python checks it against the source on import. The file name recorded in
the code objects is that of the venv it was compiled for; importlib replaces it by the real
source path when it loads the module, so tracebacks name the venv they run in.

Layout: ``<wheelhouse>/pyc/<magic hex>-<opt>/<key[:2]>/<key>/`` holding the ``.pyc`` files at
their ``site-packages``-relative paths and ``manifest.json`` (the sha256 of each). An entry is
written in a temporary sibling and renamed into place (concurrent builders: the first rename
wins); its files are hard links to the bytecode the build just wrote (a copy across file
systems), and the manifest holds the sha256 of their bytes then. Reading never follows a
symbolic link, verifies each file's sha256 as it copies it, and copies (never links: a job may
write into its venv's files in place, which an entry's link would also see: the sha256 check
finds it); an entry that fails is dropped and the distribution compiled again.
``mlws env prune --wheels`` empties it with the wheelhouse.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_mlws.crypto import without_secret_key
from jupyter_mlws.environments.dockerfile import COMPILE_SKIP

__all__ = [
    "BytecodeCache",
    "BytecodeSummary",
    "compile_venv",
    "bytecode_pass_running",
    "compile_in_background",
    "wait_for_bytecode",
]

MANIFEST = "manifest.json"
_FORMAT = 1
_MODE = "checked-hash"
#: The flags word of checked-hash bytecode (PEP 552: hash-based, check the source).
_CHECKED_HASH = (3).to_bytes(4, "little")
_TMP = ".tmp-"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR = getattr(os, "O_DIRECTORY", 0)
_MAX_MANIFEST = 64 << 20
#: In a venv: the lock its background bytecode pass holds while it runs, and that pass's log.
PASS_LOCK = ".mlws-bytecode.lock"
PASS_LOG = ".mlws-bytecode.log"
_QUERY = ("import importlib.util as u, sys; "
          "print(u.MAGIC_NUMBER.hex(), sys.implementation.cache_tag, sys.flags.optimize)")


class _Damaged(Exception):
    """A cache entry that cannot be used as it is."""


@dataclass
class _Dist:
    """One installed distribution: its ``.py`` files (``site-packages``-relative) and key."""

    name: str
    sources: dict[str, str]  # relative path -> hash recorded in RECORD ("" when none)
    key: str | None = None
    pycs: dict[str, str] = field(default_factory=dict)  # pyc relative path -> source path


@dataclass
class BytecodeSummary:
    """What :func:`compile_venv` did: distributions copied from the cache and compiled."""

    cached: list[str] = field(default_factory=list)
    compiled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return (f"bytecode: {len(self.cached)} packages from the cache, "
                f"{len(self.compiled)} compiled")


class BytecodeCache:
    """Bytecode entries under ``root`` (``<wheelhouse>/pyc``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry(self, tag: str, key: str) -> Path:
        """Where the entry ``key`` lives (``tag``: ``<magic hex>-<opt>``)."""
        return self.root / tag / key[:2] / key

    def fetch(self, tag: str, key: str, allowed: set[str], site: Path) -> list[str] | None:
        """Copy the entry's ``.pyc`` files into ``site``; their relative paths, or ``None``
        when there is no entry. :class:`_Damaged` when it cannot be used (nothing is left
        copied then)."""
        copied: list[str] = []
        made: set[str] = set()
        try:
            with _open_tree(self.root, f"{tag}/{key[:2]}/{key}") as tree:
                if tree is None:
                    return None
                manifest = json.loads(tree.read(MANIFEST, _MAX_MANIFEST))
                if not isinstance(manifest, dict) or manifest.get("key") != key or \
                        not isinstance(manifest.get("files"), dict):
                    raise _Damaged("its manifest does not describe it")
                for rel, sha in sorted(manifest["files"].items()):
                    if rel not in allowed:
                        raise _Damaged(f"{rel} is not bytecode of the package")
                    data = tree.read(rel)
                    if hashlib.sha256(data).hexdigest() != sha:
                        raise _Damaged(f"the sha256 of {rel} changed")
                    dest = os.path.join(site, rel)
                    folder = os.path.dirname(dest)
                    if folder not in made:
                        os.makedirs(folder, exist_ok=True)
                        made.add(folder)
                    _write(dest, data)
                    copied.append(rel)
        except (OSError, ValueError, _Damaged) as exc:
            for rel in copied:
                with contextlib.suppress(OSError):
                    (site / rel).unlink()
            if isinstance(exc, _Damaged):
                raise
            raise _Damaged(str(exc)) from exc
        return copied

    def drop(self, tag: str, key: str) -> None:
        """Remove an entry (renamed aside first, so no reader finds half of it)."""
        entry = self.entry(tag, key)
        aside = entry.with_name(f"{_TMP}drop-{key}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(entry, aside)
        except OSError:
            return
        if aside.is_symlink() or not aside.is_dir():
            aside.unlink(missing_ok=True)
        else:
            shutil.rmtree(aside, ignore_errors=True)

    def store(self, tag: str, key: str, site: Path, pycs: list[str]) -> bool:
        """Keep the ``.pyc`` files ``pycs`` (relative to ``site``) as the entry ``key``;
        whether it was written (an entry already there is kept)."""
        entry = self.entry(tag, key)
        if entry.exists() or entry.is_symlink():
            return False
        entry.parent.mkdir(parents=True, exist_ok=True)
        if any(p.is_symlink() for p in (entry.parent, entry.parent.parent)):
            return False
        tmp = entry.with_name(f"{_TMP}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        made: set[Path] = set()
        try:
            files = {}
            for rel in pycs:
                source = site / rel
                if source.is_symlink() or not source.is_file():
                    continue
                target = tmp / rel
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                sha = _keep(source, target)
                if sha is None:  # not all of it is this pass's bytecode: no entry
                    return False
                files[rel] = sha
            (tmp / MANIFEST).write_text(json.dumps({"format": _FORMAT, "key": key,
                                                    "files": files}), encoding="utf-8")
            os.rename(tmp, entry)  # atomic; fails when another builder was first
            return True
        except OSError:
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def compile_venv(py: Path, tmp: Path, final: Path, cache: BytecodeCache, *,
                 read: bool = True, before: BytecodeSummary | None = None) -> BytecodeSummary:
    """Byte-compile the packages installed in the venv at ``tmp`` (to live at ``final``: the
    paths its code objects name), taking what the cache holds (unless not ``read``) and keeping
    what it compiles. The summary has the notes (damaged entries dropped) and the log line.
    ``before``: what an earlier call did in this build (pip's, while the packages were
    fetched); its distributions are left as they are and counted in the summary."""
    summary = BytecodeSummary()
    if before is not None:
        summary.cached += before.cached
        summary.compiled += before.compiled
        summary.notes += before.notes
    sites = sorted((tmp / "lib").glob("python3*/site-packages"))
    query = subprocess.run([str(py), "-c", _QUERY], capture_output=True, text=True, check=False,
                           env=without_secret_key())
    parts = query.stdout.split()
    if query.returncode != 0 or len(parts) != 3 or parts[1] == "None":
        _compile(py, [str(s) for s in sites], tmp, final)  # no tag: compile as a folder
        return summary
    magic, cache_tag, opt = parts
    read = read and os.open in os.supports_dir_fd  # reads follow no link (see _Tree)
    tag = f"{magic}-{opt}"
    skip = re.compile(COMPILE_SKIP)
    done = set(before.cached + before.compiled) if before is not None else set()
    for site in sites:
        dists, loose = _distributions(site, skip, tag, cache_tag, int(opt))
        todo: list[str] = list(loose)
        for dist in dists:
            if dist.name in done:
                continue
            if dist.key is not None and read:
                try:
                    if cache.fetch(tag, dist.key, set(dist.pycs), site) is not None:
                        summary.cached.append(dist.name)
                        continue
                except _Damaged as exc:
                    cache.drop(tag, dist.key)
                    summary.notes.append(f"note: the bytecode cache entry of {dist.name} was "
                                         f"damaged ({exc}); removed, it is compiled again")
            summary.compiled.append(dist.name)
            todo += dist.pycs.values()
        _compile(py, [str(site / rel) for rel in sorted(set(todo))], tmp, final, files=True)
        for dist in dists:
            if dist.key is not None and dist.name in summary.compiled and dist.name not in done:
                cache.store(tag, dist.key, site, list(dist.pycs))
    return summary


def _distributions(site: Path, skip: re.Pattern[str], tag: str, cache_tag: str,
                   opt: int) -> tuple[list[_Dist], list[str]]:
    """The distributions of ``site`` that have ``.py`` files (keyed when every one has a
    recorded hash), and the ``.py`` files to compile that no single ``RECORD`` owns."""
    dists = []
    owners: dict[str, int] = {}
    for record in sorted(site.glob("*.dist-info/RECORD")):
        sources = _record_sources(record)
        if sources:
            dists.append(_Dist(record.parent.name.removesuffix(".dist-info"), sources))
            for rel in sources:
                owners[rel] = owners.get(rel, 0) + 1
    suffix = f".{cache_tag}" + (f".opt-{opt}" if opt else "") + ".pyc"
    for dist in dists:
        if all(dist.sources.values()):
            digest = hashlib.sha256(json.dumps(
                [_FORMAT, tag, cache_tag, _MODE, skip.pattern, sorted(dist.sources.items())]
            ).encode()).hexdigest()
            dist.key = digest
        for rel in dist.sources:
            full = os.path.join(site, rel)
            if owners[rel] == 1 and not skip.search(full) and os.path.isfile(full):
                head, name = posixpath.split(rel)
                dist.pycs[posixpath.join(head, "__pycache__", name[:-3] + suffix)] = rel
    loose = [rel for rel in _py_files(site) if owners.get(rel, 0) != 1
             and not skip.search(os.path.join(site, rel))]
    return dists, loose


def _record_sources(record: Path) -> dict[str, str]:
    """``{path: recorded hash}`` of the ``.py`` files a ``RECORD`` lists inside its
    ``site-packages`` (``""`` for a file it gives no hash)."""
    out = {}
    try:
        with open(record, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    for row in rows:
        if not row or not row[0].endswith(".py"):
            continue
        rel = posixpath.normpath(row[0].replace("\\", "/"))
        if rel.startswith(("/", "../")) or rel == ".." or "\n" in rel:
            continue
        out[rel] = row[1] if len(row) > 1 else ""
    return out


def _py_files(site: Path) -> Iterator[str]:
    """Every ``.py`` file under ``site`` (relative paths; symlinked folders not entered, as
    compileall does)."""
    base = len(str(site)) + 1
    for dirpath, dirs, names in os.walk(site):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel_dir = dirpath[base:].replace(os.sep, "/")
        for name in names:
            if name.endswith(".py") and "\n" not in name:
                yield f"{rel_dir}/{name}" if rel_dir else name


def _compile(py: Path, targets: list[str], tmp: Path, final: Path, *, files: bool = False) -> None:
    """Run compileall on ``targets`` (checked-hash, the paths as they will be at ``final``;
    forced: ``python -m venv`` leaves timestamp bytecode of pip and setuptools, which would
    not hold in another venv).
    Folders: one run on every core (``-j 0``). Files: compileall compiles a list (``-i``) one
    file after the other, so the list is split by size into one run per core. Errors are
    ignored, as pip ignores them."""
    if not targets:
        return
    cmd = [str(py), "-m", "compileall", "-q", "-f", "-x", COMPILE_SKIP, "-s", str(tmp),
           "-p", str(final), "--invalidation-mode", _MODE]
    if not files:
        subprocess.run([*cmd, "-j", "0", *targets], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False, env=without_secret_key())
        return
    runs = max(1, min(os.cpu_count() or 1, len(targets) // 16))
    shares: list[list[str]] = [[] for _ in range(runs)]
    loads = [0] * runs
    for size, path in sorted(((_size(p), p) for p in targets), reverse=True):
        i = loads.index(min(loads))  # the largest file to the lightest share
        shares[i].append(path)
        loads[i] += size
    env = without_secret_key()
    procs = [subprocess.Popen([*cmd, "-i", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env) for _ in shares]
    try:
        for proc, share in zip(procs, shares):
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):  # a run that died: errors are ignored
                proc.stdin.write(("\n".join(share) + "\n").encode("utf-8", "surrogateescape"))
                proc.stdin.close()
    finally:
        for proc in procs:
            proc.wait()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _Tree:
    """Reads files under a folder (a descriptor) without following a symbolic link below it;
    each folder is opened once."""

    def __init__(self, fd: int) -> None:
        self._dirs = {"": fd}

    def folder(self, rel: str) -> int:
        fd = self._dirs.get(rel)
        if fd is None:
            head, name = posixpath.split(rel)
            if name in ("", ".", ".."):
                raise _Damaged(f"{rel} is not a plain relative path")
            parent = self.folder(head)
            try:
                fd = os.open(name, os.O_RDONLY | _DIR | _NOFOLLOW, dir_fd=parent)
            except OSError as exc:
                raise _Damaged(f"{rel} is not a folder ({exc.strerror})") from exc
            self._dirs[rel] = fd
        return fd

    def read(self, rel: str, limit: int = 1 << 30) -> bytes:
        """The bytes of the regular file ``rel``."""
        head, name = posixpath.split(rel)
        if name in ("", ".", ".."):
            raise _Damaged(f"{rel} is not a plain relative path")
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=self.folder(head))
        except OSError as exc:
            raise _Damaged(f"{rel} cannot be read without following a link "
                           f"({exc.strerror})") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
                raise _Damaged(f"{rel} is not a regular file")
            chunks = []
            while chunk := os.read(fd, max(info.st_size, 1 << 16)):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()


@contextlib.contextmanager
def _open_tree(root: Path, rel: str) -> Iterator[_Tree | None]:
    """The folder ``root/rel`` reached without following a link below ``root`` (``None``
    when it does not exist); :class:`_Damaged` when a part of ``rel`` is a link."""
    try:
        fd = os.open(root, os.O_RDONLY | _DIR)
    except FileNotFoundError:
        yield None
        return
    tree = _Tree(fd)
    try:
        try:
            entry = _Tree(os.dup(tree.folder(rel)))
        except _Damaged as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                yield None
                return
            raise
        try:
            yield entry
        finally:
            entry.close()
    finally:
        tree.close()


def _keep(source: Path, target: Path) -> str | None:
    """Put the file ``source`` (bytecode this build just wrote) at ``target``, a hard link
    where both are on one file system (writing the bytes again took a quarter of the bytecode
    step on a slow disk), else a copy; the sha256 of its bytes, or ``None`` when it is not
    checked-hash bytecode (a job that imported the module while a background pass ran wrote
    its own over it). A job that later writes into its venv's file in place changes the entry
    too: :meth:`BytecodeCache.fetch` finds the sha256 changed and drops it."""
    fd = os.open(source, os.O_RDONLY | _NOFOLLOW)
    try:
        inode = os.fstat(fd).st_ino
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
    finally:
        os.close(fd)
    if data[4:8] != _CHECKED_HASH:
        return None
    try:
        os.link(source, target, follow_symlinks=False)
        if os.lstat(target).st_ino != inode:  # replaced between the read and the link
            target.unlink()
            target.write_bytes(data)
    except OSError:
        target.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _write(path: str, data: bytes) -> None:
    """Write ``data`` as a new file ``path``: what was there is unlinked, never written through
    (an installer may have linked it from its own cache)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


# --- the background pass ---------------------------------------------------------------------
# A venv build returns once its packages are installed; their bytecode is compiled (or copied
# from the cache) by a process of its own, at a lower priority, like uv leaves it to the first
# import by default. A job started meanwhile compiles in memory what it imports (Python's
# imports and compileall both replace a .pyc atomically, so either one is whole); the pass keeps
# in the cache only checked-hash bytecode it wrote itself (see _keep).


def compile_in_background(py: Path, venv: Path, cache: BytecodeCache, *, read: bool = True,
                          before: BytecodeSummary | None = None) -> None:
    """Start the bytecode pass of the venv at ``venv`` (built, in its final place): it holds
    :data:`PASS_LOCK` from before this returns until it ends, and writes its notes and summary
    line to :data:`PASS_LOG`. ``before``: as for :func:`compile_venv`."""
    lock = os.open(venv / PASS_LOCK, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # taken here, so a waiter never finds it free early
        cmd = [sys.executable, "-m", __name__, "--python", str(py), "--venv", str(venv),
               "--cache", str(cache.root), "--lock-fd", str(lock)]
        cmd += [] if read else ["--no-read"]
        for name in (before.cached if before else []):
            cmd += ["--cached", name]
        for name in (before.compiled if before else []):
            cmd += ["--compiled", name]
        # (the venv's interpreter runs its packages' .pth files: the key stays out of reach)
        proc = subprocess.Popen(cmd, pass_fds=(lock,), start_new_session=True,
                                env=without_secret_key(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # reaped when it ends (a Jupyter server or kernel that built lives on)
        threading.Thread(target=proc.wait, name="mlws-bytecode-pass", daemon=True).start()
    finally:
        os.close(lock)  # the pass holds the lock through its own descriptor


def wait_for_bytecode(venv: Path, timeout: float = 300.0) -> list[str] | None:
    """Wait until no bytecode pass runs in the venv at ``venv``; the lines of the last one's
    log (``[]`` when there was none), or ``None`` when it still runs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while bytecode_pass_running(venv):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
    try:
        with open(venv / PASS_LOG, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def bytecode_pass_running(venv: Path) -> bool:
    """Whether a bytecode pass runs in the venv at ``venv`` now (its lock is held)."""
    try:
        fd = os.open(venv / PASS_LOCK, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="mlws-bytecode-pass")
    parser.add_argument("--python", required=True)
    parser.add_argument("--venv", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--lock-fd", type=int, required=True)
    parser.add_argument("--no-read", action="store_true")
    parser.add_argument("--cached", action="append", default=[])
    parser.add_argument("--compiled", action="append", default=[])
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        os.nice(10)  # a job started beside it comes first
    venv = Path(args.venv)
    before = BytecodeSummary(cached=args.cached, compiled=args.compiled)
    try:
        done = compile_venv(Path(args.python), venv, venv, BytecodeCache(Path(args.cache)),
                            read=not args.no_read, before=before)
        lines = [*done.notes, done.line]
    except Exception as exc:  # the venv went (pruned, rebuilt): nothing to keep
        lines = [f"bytecode: the background pass stopped ({type(exc).__name__}: {exc})"]
    with contextlib.suppress(OSError):
        fd = os.open(venv / PASS_LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    with contextlib.suppress(OSError):
        os.close(args.lock_fd)  # the pass has ended: waiters go on
    return 0


if __name__ == "__main__":
    sys.exit(_main())
