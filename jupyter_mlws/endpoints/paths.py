"""The files of one endpoint, under ``<workspace>/endpoints/<name>/``.

``config.json`` is what the workspace wants (written by :mod:`.operations`, read by the
supervisor); ``status.json`` is what the supervisor sees (written by it, read by ``show``).
Both are replaced atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_mlws.fileio import write_json_atomic


@dataclass(frozen=True)
class EndpointPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    def log(self, deployment: str) -> Path:
        return self.root / "logs" / f"{deployment}.log"

    def run_dir(self, deployment: str) -> Path:
        return self.root / "run" / deployment

    def code_dir(self, deployment: str, generation: int) -> Path:
        return self.root / "code" / f"{deployment}-{generation}"

    def model_root(self, deployment: str, generation: int) -> Path:
        return self.root / "models" / f"{deployment}-{generation}"


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and private to the user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, data, mode=0o600)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON mapping in ``path``, or ``None`` when it is missing or half-written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
