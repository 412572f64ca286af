"""Which workspaces of this machine use each cached environment image.

Images are named by the environment's hash and shared by every workspace on the machine (that
is the point of the cache), so one workspace cannot tell alone whether an image it no longer
needs is still needed elsewhere. Each workspace that builds or adopts an image records itself
here (``<cache>/image-users/<hash>/<key of the workspace folder>``, holding the folder's path);
``mlws env prune`` removes an image only when no other workspace that still exists has recorded
it. A workspace folder that was deleted no longer counts.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from jupyter_mlws.fileio import write_text_atomic

_HASH = re.compile(r"[0-9a-f]{8,64}")


class ImageUsers:
    """The per-machine record of which workspace folders use which image hash."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def _key(workspace: Path) -> str:
        return hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:24]

    def _dir(self, env_hash: str) -> Path:
        if not _HASH.fullmatch(env_hash):
            raise ValueError(f"{env_hash!r} is not an environment hash")
        return self.root / env_hash

    def add(self, env_hash: str, workspace: Path) -> None:
        """Record that ``workspace`` uses the image of ``env_hash`` (idempotent)."""
        entry = self._dir(env_hash) / self._key(workspace)
        if not entry.is_file():
            entry.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(entry, str(workspace.resolve()))

    def others(self, env_hash: str, workspace: Path) -> list[Path]:
        """The other workspace folders, still present, that recorded ``env_hash``."""
        folder = self._dir(env_hash)
        mine = self._key(workspace)
        found: list[Path] = []
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            if entry.name == mine or entry.is_symlink() or not entry.is_file():
                continue
            other = Path(entry.read_text(errors="replace").strip())
            if other.is_absolute() and (other / "workspace.yaml").is_file():
                found.append(other)
        return found

    def forget(self, env_hash: str) -> None:
        """Drop every record of ``env_hash`` (its image was removed)."""
        folder = self._dir(env_hash)
        for entry in folder.iterdir() if folder.is_dir() else []:
            entry.unlink(missing_ok=True)
        if folder.is_dir():
            folder.rmdir()
