"""What every environment builder returns, the per-hash lock they share, and their build history."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

BuilderName = Literal["docker", "venv"]
#: ``lock_for(python_series)``: the recorded lock text of the hash being built, or ``None``.
LockSource = Callable[[str], "str | None"]

#: How many log lines a failed build quotes.
LOG_TAIL_LINES = 50


@dataclass
class BuildResult:
    """The outcome of materializing one environment (a Docker image or a venv).

    ``image`` is ``mlws/mlws_<hash>:latest`` for Docker and the venv's folder for a venv.
    ``resolved_packages`` holds ``pip freeze`` lines, then ``conda:<name>=<version>...`` lines
    from ``conda list --export`` when the image has conda. A cached result read back from the
    engine carries the packages recorded at its build when they are known, else ``[]``.
    """

    env_hash: str
    image: str
    image_id: str
    digest: str | None = None
    size: int = 0
    build_seconds: float = 0.0
    cached: bool = False
    log: str = ""
    resolved_packages: list[str] = field(default_factory=list)
    base_image: str | None = None
    base_image_id: str | None = None
    base_digest: str | None = None
    kind: str = "managed"
    builder: BuilderName = "docker"
    #: When this image/venv was made (UTC, ISO 8601); ``None`` when not known (adopted elsewhere).
    built_at: str | None = None
    #: The image id (Docker) or venv folder this build replaced, when it rebuilt over an
    #: existing one (``no_cache``, or a base that moved).
    replaced_image_id: str | None = None
    #: What this machine did differently from the definition: the image mapped to an offline
    #: base, the Python used, conda dependencies translated to PyPI or dropped.
    notes: list[str] = field(default_factory=list)
    #: The lock this build installed or resolved (:mod:`.locks`), and its Python series.
    lock: str | None = None
    lock_python: str | None = None
    #: Whether the build installed an existing lock (``False``: it resolved afresh).
    from_lock: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (store it with the environment version)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildResult:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def hash_lock(lock_dir: Path, env_hash: str, *, timeout: float = -1) -> FileLock:
    """The inter-process lock that makes two builds of one hash happen once."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{env_hash}.lock"), timeout=timeout)


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def utc_now() -> str:
    """The current time as the ``built_at`` of a build."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class BuildHistory:
    """Every build of each hash, one JSON line per build in ``<folder>/<hash>.builds.jsonl``.

    Append-only: a rebuild (``no_cache``) adds a line and the earlier builds stay listed.
    Writers hold the hash's lock; a reader may see every line but the one being appended.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, env_hash: str) -> Path:
        return self.folder / f"{env_hash}.builds.jsonl"

    def add(self, result: BuildResult, *, environment: str, no_cache: bool,
            refresh_base: bool) -> None:
        """Record one finished build of ``result.env_hash``."""
        entry = {
            "built_at": result.built_at or utc_now(),
            "builder": result.builder,
            "environment": environment,
            "image": result.image,
            "image_id": result.image_id,
            "replaced_image_id": result.replaced_image_id,
            "no_cache": no_cache,
            "refresh_base": refresh_base,
            "build_seconds": result.build_seconds,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry) + "\n").encode()
        fd = os.open(self.path(result.env_hash), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def entries(self, env_hash: str) -> list[dict[str, Any]]:
        """The builds of ``env_hash``, oldest first."""
        try:
            lines = self.path(env_hash).read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(item, dict):
                out.append(item)
        return out
