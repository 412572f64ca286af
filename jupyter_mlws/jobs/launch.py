"""The launch contract: what the submitter writes to ``launch.json`` and the runner and the
compute targets read, across a process boundary (and across package versions on a machine).

Readers refuse a contract newer than they know (``version``), so a runner from an older
install never runs a job half-understood.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from jupyter_mlws.errors import LaunchFormatError
from jupyter_mlws.fileio import write_text_atomic
from jupyter_mlws.jobs.paths import LAUNCH_VERSION

JobKind = Literal["notebook", "command", "pipeline", "sweep"]

__all__ = ["LAUNCH_VERSION", "Launch", "LaunchFormatError"]


class Launch(BaseModel):
    """How to run one job: where, with what, and which limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = LAUNCH_VERSION
    job_id: str
    workspace: str
    kind: JobKind
    compute: str
    compute_kind: str
    max_concurrent: int = 1
    slot_dir: str
    environment: str | None = None
    env_hash: str | None = None
    #: The command; ``{python}`` stands for the environment's interpreter.
    argv: list[str] = Field(default_factory=list)
    cwd: str
    env: dict[str, str] = Field(default_factory=dict)
    #: Host paths the job reads (mounted read-only where the target isolates the job).
    mounts: list[str] = Field(default_factory=list)
    #: Output name -> type.
    outputs: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = None
    package_dir: str
    pythonpath: str | None = None
    #: The submitter found the environment built: ``python``/``image`` say where.
    ready: bool = False
    python: str | None = None
    image: str | None = None

    def write(self, path: Path) -> None:
        """Write atomically (readers never see half a file)."""
        write_text_atomic(path, self.model_dump_json(indent=1), mode=0o644)

    @classmethod
    def read(cls, path: Path) -> Launch:
        """Read ``launch.json``; a newer or broken contract is a :class:`LaunchFormatError`."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LaunchFormatError(f"The job's launch file {str(path)!r} cannot be read: "
                                    f"{exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: object, *, source: str = "launch.json") -> Launch:
        if not isinstance(data, dict):
            raise LaunchFormatError(f"{source} does not hold a launch mapping.")
        version = data.get("version", LAUNCH_VERSION)
        if not isinstance(version, int) or version < 1 or version > LAUNCH_VERSION:
            raise LaunchFormatError(
                f"{source} has launch format version {version!r}; this jupyter_mlws reads "
                f"versions 1 to {LAUNCH_VERSION}.",
                hint="Run the job with the jupyter_mlws that submitted it (upgrade this one).")
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise LaunchFormatError(f"{source} is not a valid launch file: {where}: "
                                    f"{first['msg']}") from None
