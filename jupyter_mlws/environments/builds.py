"""What every environment builder returns, and the per-hash lock they share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

BuilderName = Literal["docker", "venv"]

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
