"""What a compute target may use of the workspace: a narrow protocol, not the facade.

Targets (built-in and plugins) are constructed with a :class:`TargetServices` and a compute
definition. The workspace hands them an adapter (``operations/target_services.py``); tests hand
them a fake. Nothing here imports the workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from jupyter_mlws.assets.environment import Environment
    from jupyter_mlws.environments.builds import BuildResult
    from jupyter_mlws.jobs.model import Job, JobStatus

Log = Callable[[str], None]


class JobRecords(Protocol):
    """The job store operations the job's life needs (a subset of ``AbstractStore``)."""

    def get_job(self, job_id: str) -> Job:
        """The job record."""

    def transition_job(self, job_id: str, status: JobStatus, *, message: str | None = None,
                       only_from: Iterable[JobStatus] | None = None, **fields: Any) -> bool:
        """Move an active job to ``status``; False when it is not in ``only_from``."""

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set fields of the job record (image, env_hash, runner_pid...)."""

    def add_metrics(self, job_id: str, metrics: Iterable[Mapping[str, Any]]) -> int:
        """Append metric points."""

    def set_job_params(self, job_id: str, params: Mapping[str, Any]) -> None:
        """Record parameters the job logged."""

    def set_job_io(self, job_id: str, direction: str,
                   items: Iterable[Mapping[str, Any]]) -> None:
        """Replace the job's inputs or outputs."""


class TargetServices(Protocol):
    """The workspace as a compute target sees it."""

    @property
    def jobs(self) -> JobRecords:
        """The job store."""

    @property
    def workspace_path(self) -> Path:
        """The workspace folder (named in cluster metadata; never opened by a target)."""

    @property
    def artifact_root(self) -> Path:
        """The artifact folder, under which every job folder lies."""

    @property
    def envs_dir(self) -> Path:
        """Where virtualenvs are materialized."""

    @property
    def cache_dir(self) -> Path:
        """Machine-wide locks and records."""

    def environment(self, ref: str) -> Environment:
        """The registered environment ``name[:version]`` (AssetNotFoundError otherwise)."""

    def lookup_environment(self, env: Environment, builder: str) -> BuildResult | None:
        """Its built image/venv when it exists already (fast), else ``None``."""

    def build_environment(self, env: Environment, builder: str,
                          log: Log | None = None) -> BuildResult:
        """Build it (or reuse the cached build); progress lines go to ``log``."""
