"""A stat cache for code snapshots: a file whose stat is unchanged is not read and hashed again.

An entry is keyed by the file's absolute path and remembers its size, ``mtime_ns``, ``ctime_ns``
and inode with the sha256 found. Any difference (an edit keeping the size, a file replaced by a
rename, a ``touch`` that put an old mtime back, which still moves ``ctime``) means hashing again.
A file changed in the same instant it was hashed could keep its stat (file times are coarse), so
an entry whose ctime is not safely older than the moment of hashing is never trusted (git's
"racily clean" rule).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: Most entries kept (the newest); an old entry costs only a re-hash.
MAX_ENTRIES = 50_000
#: How much older than the hashing moment a file's ctime must be for its entry to be trusted.
RACY_NS = 2_000_000_000


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class StatCache:
    """``lookup(path, stat)`` -> sha256 or ``None``; ``record`` what was hashed; ``save``."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("entries"), dict):
                self._entries = data["entries"]
        except (OSError, ValueError):
            pass  # no cache (or a broken one): everything is hashed

    def lookup(self, path: Path, st: os.stat_result) -> str | None:
        """The sha256 recorded for ``path`` if its stat is the one recorded, else ``None``."""
        entry = self._entries.get(str(path))
        if not isinstance(entry, list) or len(entry) != 6:
            return None
        *key, hashed_at, sha = entry
        if key != _key(st) or st.st_ctime_ns > int(hashed_at) - RACY_NS:
            return None
        return str(sha)

    def record(self, path: Path, st: os.stat_result, sha: str, hashed_at_ns: int) -> None:
        """Remember ``sha`` for ``path`` as stat'ed (``st``) before hashing at ``hashed_at_ns``."""
        self._entries[str(path)] = [*_key(st), hashed_at_ns, sha]
        self._dirty = True

    def save(self) -> None:
        """Write the cache back (atomically; the last of two concurrent writers wins)."""
        if not self._dirty:
            return
        from jupyter_mlws.fileio import write_json_atomic

        entries = self._entries
        if len(entries) > MAX_ENTRIES:
            newest = sorted(entries.items(), key=lambda kv: kv[1][4])[-MAX_ENTRIES:]
            entries = dict(newest)
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.file, {"version": 1, "entries": entries})
        except OSError:
            pass  # a cache that cannot be written only costs re-hashing next time
        self._dirty = False

