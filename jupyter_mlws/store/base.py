"""The metadata store contract. Everything above ``store/`` talks to this, never to SQL."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_mlws.assets.base import Asset

if TYPE_CHECKING:
    from jupyter_mlws.jobs.model import Job, JobEvent, JobIO, JobStatus, Metric


@dataclass
class NewVersion:
    """What a registration asks the store to write, in one transaction."""

    kind: str
    name: str
    version: str | None
    content_hash: str
    spec: dict[str, Any]
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    hidden: bool = False
    curated: bool = False
    env_hash: str | None = None
    job_id: str | None = None
    created_by: str | None = None
    secret: dict[str, Any] | None = None
    #: With no version given: return the latest version instead when its content is the same.
    reuse_identical_latest: bool = False


class AbstractJobStore(abc.ABC):
    """Job records: status with its history, metrics, parameters, inputs and outputs."""

    @abc.abstractmethod
    def create_job(self, job: Mapping[str, Any], *, params: Mapping[str, Any] | None = None,
                   io: Iterable[Mapping[str, Any]] = ()) -> Job: ...

    @abc.abstractmethod
    def transition_job(self, job_id: str, status: JobStatus, *, message: str | None = None,
                       only_from: Iterable[JobStatus] | None = None, **fields: Any) -> bool:
        """Move an active job to ``status``; False when it is not in ``only_from``."""

    @abc.abstractmethod
    def update_job(self, job_id: str, **fields: Any) -> None: ...

    @abc.abstractmethod
    def request_cancel(self, job_id: str) -> Job: ...

    @abc.abstractmethod
    def get_job(self, job_id: str) -> Job: ...

    @abc.abstractmethod
    def list_jobs(self, *, status: Iterable[str] | None = None, experiment: str | None = None,
                  parent_id: str | None = None, top_level: bool = True, type: str | None = None,
                  limit: int | None = None, offset: int = 0,
                  created_by: str | None = None) -> list[Job]: ...

    @abc.abstractmethod
    def count_jobs(self, *, status: Iterable[str] | None = None, experiment: str | None = None,
                   parent_id: str | None = None, top_level: bool = False,
                   created_by: str | None = None) -> int:
        """Jobs with these filters (``top_level``: pipeline steps left out; ``created_by``: that
        user, exactly or as ``user@<any host>``)."""

    @abc.abstractmethod
    def job_events(self, job_id: str) -> list[JobEvent]: ...

    @abc.abstractmethod
    def add_metrics(self, job_id: str, metrics: Iterable[Mapping[str, Any]]) -> int: ...

    @abc.abstractmethod
    def job_metrics(self, job_id: str) -> list[Metric]: ...

    @abc.abstractmethod
    def set_job_params(self, job_id: str, params: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    def job_params(self, job_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def set_job_io(self, job_id: str, direction: str,
                   items: Iterable[Mapping[str, Any]]) -> None: ...

    @abc.abstractmethod
    def job_io(self, job_id: str) -> list[JobIO]: ...

    @abc.abstractmethod
    def jobs_using(self, kind: str, name: str, version: str) -> list[str]:
        """Jobs that consumed this asset version (lineage, the other way)."""

    @abc.abstractmethod
    def iter_active_jobs(self) -> Iterator[Job]: ...


class AbstractStore(AbstractJobStore):
    """Versioned assets by (kind, name, version), with labels, tags and archiving."""

    @abc.abstractmethod
    def create_version(self, new: NewVersion) -> tuple[Asset, bool]:
        """Write a version; return it and whether it was created (False: identical one exists)."""

    @abc.abstractmethod
    def get_version(
        self, kind: str, name: str, version: str | None = None, *, latest: bool = False
    ) -> Asset:
        """One version; ``version=None`` means the latest unarchived one."""

    @abc.abstractmethod
    def list_versions(
        self,
        kind: str,
        name: str | None = None,
        *,
        tags: Mapping[str, str | None] | None = None,
        include_archived: bool = False,
        include_hidden: bool = False,
        limit: int | None = None,
        offset: int = 0,
        name_contains: str | None = None,
        created_by: str | None = None,
    ) -> list[Asset]:
        """Versions of ``name`` (newest first), or the latest version of each name.

        ``name_contains`` keeps the names that contain it, ignoring case.
        """

    @abc.abstractmethod
    def count_versions(
        self,
        kind: str,
        name: str | None = None,
        *,
        tags: Mapping[str, str | None] | None = None,
        include_archived: bool = False,
        include_hidden: bool = False,
        name_contains: str | None = None,
        created_by: str | None = None,
    ) -> int:
        """How many items :meth:`list_versions` gives with the same filters and no limit: the
        versions of ``name``, or without a name the number of names."""

    @abc.abstractmethod
    def names(self, kind: str, *, include_hidden: bool = False) -> list[str]: ...

    @abc.abstractmethod
    def set_archived(self, kind: str, name: str, version: str | None, archived: bool) -> int:
        """Archive or restore one version, or every version of a name; returns how many."""

    @abc.abstractmethod
    def update_metadata(
        self,
        kind: str,
        name: str,
        version: str,
        *,
        description: str | None = None,
        set_tags: Mapping[str, str] | None = None,
        remove_tags: list[str] | None = None,
    ) -> Asset: ...

    @abc.abstractmethod
    def find_by_env_hash(self, env_hash: str) -> list[Asset]:
        """Environment versions whose hash is ``env_hash`` (or starts with it)."""

    @abc.abstractmethod
    def find_by_job(self, job_id: str) -> list[Asset]:
        """Versions registered from the outputs of ``job_id``."""

    @abc.abstractmethod
    def get_secret(self, kind: str, name: str, version: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def put_secret(self, kind: str, name: str, version: str, secret: dict[str, Any]) -> None:
        """Replace the secret of ``kind name:version`` in place (leaving no copy behind)."""

    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abc.abstractmethod
    def all_artifact_specs(self) -> list[dict[str, Any]]:
        """Every stored artifact a committed record refers to (for garbage collection): the
        ``artifact``/``code_artifact`` of versions, build contexts, and jobs' code snapshots."""

    @abc.abstractmethod
    def record_build(
        self,
        env_hash: str,
        builder: str,
        *,
        status: str,
        environment: str | None = None,
        result: dict[str, Any] | None = None,
        log: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record that a build of ``env_hash`` started (``building``), succeeded or failed."""

    @abc.abstractmethod
    def get_build(self, env_hash: str, builder: str) -> dict[str, Any] | None:
        """The latest build record (with its full ``log``), or ``None``."""

    @abc.abstractmethod
    def list_builds(self, builder: str | None = None) -> list[dict[str, Any]]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
