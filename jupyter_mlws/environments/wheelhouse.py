"""The wheelhouse: every file a pip build installed, kept by its sha256, so a rebuild from a lock
installs from this machine's disk (no index, no download, no re-check of the index's pages).

Layout: ``<cache>/wheels/<sha256[:2]>/<sha256>/<file name>``, shared by every environment and
workspace of the user (a file is the same whichever lock lists it). A file enters under the
sha256 computed from its bytes, so what is kept is exactly what the lock's ``--hash`` names;
pip checks the hashes again when it installs (``--require-hashes``).

A rebuild uses it only when *every* line of the lock has a hash whose file is here: the files
are linked into a temporary folder that pip reads with ``--no-index --find-links``. Otherwise
the build downloads (``pip download``), installs from what it downloaded, and keeps the files.
``<cache>/wheels/pyc/`` holds the bytecode cache of the venv builds (:mod:`.pyc_cache`);
``mlws env prune --wheels`` (or ``mlws gc``) empties both.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from jupyter_mlws.environments.pyc_cache import BytecodeCache
from jupyter_mlws.fileio import file_sha256

__all__ = ["Wheelhouse", "file_sha256", "lock_hashes"]

_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
_TMP = ".tmp-"


def lock_hashes(lines: Iterable[str]) -> list[list[str]] | None:
    """The sha256 hashes of each requirement line (a line may list several files), or ``None``
    when a line has none (such a lock cannot be installed from the wheelhouse)."""
    out = []
    for line in lines:
        found = _HASH.findall(line)
        if not found:
            return None
        out.append(found)
    return out


class Wheelhouse:
    """Files kept by sha256 under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        #: Names of files :meth:`files_for` dropped because their bytes had changed.
        self.dropped: list[str] = []
        #: The packages' bytecode, kept beside the files (counted and cleared with them).
        self.bytecode = BytecodeCache(self.root / "pyc")

    def path_of(self, sha256: str) -> Path | None:
        """The kept file with this sha256, else ``None``."""
        folder = self.root / sha256[:2] / sha256
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                if entry.is_file() and not entry.is_symlink() and \
                        not entry.name.startswith(_TMP):
                    return entry
        return None

    def files_for(self, lines: Iterable[str], *, verify: bool = False) -> list[Path] | None:
        """One kept file per lock line (the first of its hashes that is here), or ``None``
        when a line has no hash or none of its files is kept. ``verify`` hashes each file
        again and drops one whose bytes no longer match (it then counts as missing)."""
        per_line = lock_hashes(lines)
        if per_line is None:
            return None
        out = []
        for hashes in per_line:
            found = None
            for sha in hashes:
                path = self.path_of(sha)
                if path is not None and verify and file_sha256(path) != sha:
                    shutil.rmtree(path.parent, ignore_errors=True)
                    self.dropped.append(path.name)
                    path = None
                if path is not None:
                    found = path
                    break
            if found is None:
                return None
            out.append(found)
        return out

    @contextlib.contextmanager
    def links(self, files: list[Path]) -> Iterator[Path]:
        """A temporary flat folder holding ``files`` (hard links, else copies) for pip's
        ``--find-links``; removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="mlws-wheels-") as tmp:
            for path in files:
                target = Path(tmp) / path.name
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copyfile(path, target)
            yield Path(tmp)

    def add(self, path: Path, sha256: str | None = None) -> str:
        """Keep the file at ``path`` (its bytes decide the sha256); the sha256."""
        sha = sha256 or file_sha256(path)
        if self.path_of(sha) is not None:
            return sha
        folder = self.root / sha[:2] / sha
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{_TMP}{os.getpid()}-{path.name}"
        shutil.copyfile(path, tmp)
        os.replace(tmp, folder / path.name)  # atomic: a reader sees all of it or nothing
        return sha

    def add_folder(self, folder: Path, wanted: set[str] | None = None) -> dict[str, str]:
        """Keep the files of ``folder`` (only those whose sha256 is in ``wanted`` when given);
        ``{file name: sha256}`` of every file looked at."""
        out = {}
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.is_symlink():
                continue
            sha = file_sha256(path)
            out[path.name] = sha
            if wanted is None or sha in wanted:
                self.add(path, sha)
        return out

    def size(self) -> tuple[int, int]:
        """``(files, bytes)`` kept, the bytecode cache included."""
        count = total = 0
        if self.root.is_dir():
            for dirpath, _dirs, names in os.walk(self.root):
                for name in names:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(dirpath, name)).st_size
                        count += 1
        return count, total

    def clear(self) -> tuple[int, int]:
        """Remove every kept file and the bytecode cache; ``(files, bytes)`` removed."""
        found = self.size()
        shutil.rmtree(self.root, ignore_errors=True)
        return found
