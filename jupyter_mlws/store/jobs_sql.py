"""Job records on the SQLAlchemy store (mixed into :class:`SqlStore`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from jupyter_mlws.errors import NotFoundError
from jupyter_mlws.jobs.model import (
    ACTIVE_VALUES,
    TERMINAL_VALUES,
    Job,
    JobEvent,
    JobIO,
    JobStatus,
    Metric,
)
from jupyter_mlws.store.rows import (
    JobEventRow,
    JobIORow,
    JobMetricRow,
    JobParamRow,
    JobRow,
    aware,
    utcnow,
)


def _job(row: JobRow) -> Job:
    return Job.model_construct(
        id=row.id, type=row.type, display_name=row.display_name, experiment=row.experiment,
        status=row.status, parent_id=row.parent_id, step_name=row.step_name,
        compute=row.compute, environment=row.environment, env_hash=row.env_hash,
        image=row.image, spec=json.loads(row.spec), error=row.error,
        result=json.loads(row.result) if row.result else None,
        cancel_requested=row.cancel_requested, runner_pid=row.runner_pid,
        created_at=aware(row.created_at), started_at=aware(row.started_at),
        ended_at=aware(row.ended_at), created_by=row.created_by,
    )


class JobStoreMixin:
    """Needs ``_read()`` and ``_writing()`` session factories from the store."""

    _read: Any

    def _writing(self) -> AbstractContextManager[Session]:  # provided by SqlStore
        raise NotImplementedError

    def _job_row(self, s: Session, job_id: str) -> JobRow:
        row = s.get(JobRow, job_id)
        if row is None:
            raise NotFoundError(
                f"No job {job_id!r} in this workspace.", hint="List jobs with `mlws job list`."
            )
        return row

    def create_job(
        self,
        job: Mapping[str, Any],
        *,
        params: Mapping[str, Any] | None = None,
        io: Iterable[Mapping[str, Any]] = (),
    ) -> Job:
        with self._writing() as s:
            row = JobRow(
                **{k: v for k, v in job.items() if k not in ("spec", "result")},
                spec=json.dumps(job.get("spec", {}), default=str),
                cancel_requested=False,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()  # the job row first: the rows below point at it
            s.add(JobEventRow(job_id=row.id, status=row.status, at=row.created_at))
            for key, value in (params or {}).items():
                s.add(JobParamRow(job_id=row.id, key=key, value=json.dumps(value, default=str)))
            for item in io:
                s.add(JobIORow(job_id=row.id, **item))
            s.flush()
            return _job(row)

    def transition_job(
        self,
        job_id: str,
        status: JobStatus,
        *,
        message: str | None = None,
        only_from: Iterable[JobStatus] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job to ``status`` (recording the event). Terminal jobs never move again.

        Returns ``False`` (and changes nothing) when the job's status is not in ``only_from``.
        """
        stored = JobStatus(status).value  # the text in the database
        with self._writing() as s:
            row = self._job_row(s, job_id)
            allowed = (tuple(JobStatus(x).value for x in only_from) if only_from is not None
                       else ACTIVE_VALUES)
            if row.status not in allowed or row.status in TERMINAL_VALUES:
                return False
            now = utcnow()
            row.status = stored
            if stored == JobStatus.RUNNING.value and row.started_at is None:
                row.started_at = now
            if stored in TERMINAL_VALUES:
                row.ended_at = now
            for key, value in fields.items():
                if key == "result":
                    value = json.dumps(value, default=str)
                setattr(row, key, value)
            s.add(JobEventRow(job_id=job_id, status=stored, at=now, message=message))
            return True

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Change fields that are not the status (image, runner pid, result...)."""
        with self._writing() as s:
            row = self._job_row(s, job_id)
            for key, value in fields.items():
                if key in ("result", "spec"):
                    value = json.dumps(value, default=str)
                setattr(row, key, value)

    def request_cancel(self, job_id: str) -> Job:
        with self._writing() as s:
            row = self._job_row(s, job_id)
            if row.status not in TERMINAL_VALUES:
                row.cancel_requested = True
            s.flush()
            return _job(row)

    def get_job(self, job_id: str) -> Job:
        with self._read() as s:
            return _job(self._job_row(s, job_id))

    def list_jobs(
        self,
        *,
        status: Iterable[str] | None = None,
        experiment: str | None = None,
        parent_id: str | None = None,
        top_level: bool = True,
        type: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        created_by: str | None = None,
    ) -> list[Job]:
        stmt = _filtered(select(JobRow), status, experiment, parent_id, top_level, created_by)
        if type:
            stmt = stmt.where(JobRow.type == type)
        stmt = stmt.order_by(JobRow.created_at.desc(), JobRow.id.desc()).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as s:
            return [_job(r) for r in s.scalars(stmt).all()]

    def count_jobs(self, *, status: Iterable[str] | None = None, experiment: str | None = None,
                   parent_id: str | None = None, top_level: bool = False,
                   created_by: str | None = None) -> int:
        stmt = _filtered(select(func.count()).select_from(JobRow), status, experiment, parent_id,
                         top_level, created_by)
        with self._read() as s:
            return int(s.scalar(stmt) or 0)

    def job_events(self, job_id: str) -> list[JobEvent]:
        with self._read() as s:
            rows = s.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id)
                             .order_by(JobEventRow.id)).all()
            return [JobEvent(status=r.status, at=aware(r.at), message=r.message)  # type: ignore[arg-type]
                    for r in rows]

    def add_metrics(self, job_id: str, metrics: Iterable[Mapping[str, Any]]) -> int:
        n = 0
        with self._writing() as s:
            for m in metrics:
                s.add(JobMetricRow(job_id=job_id, key=str(m["key"]), value=float(m["value"]),
                                   step=m.get("step"), at=m.get("at") or utcnow()))
                n += 1
        return n

    def job_metrics(self, job_id: str) -> list[Metric]:
        with self._read() as s:
            rows = s.scalars(select(JobMetricRow).where(JobMetricRow.job_id == job_id)
                             .order_by(JobMetricRow.id)).all()
            return [Metric(key=r.key, value=r.value, step=r.step, at=aware(r.at))  # type: ignore[arg-type]
                    for r in rows]

    def set_job_params(self, job_id: str, params: Mapping[str, Any]) -> None:
        with self._writing() as s:
            for key, value in params.items():
                s.merge(JobParamRow(job_id=job_id, key=key, value=json.dumps(value, default=str)))

    def job_params(self, job_id: str) -> dict[str, Any]:
        with self._read() as s:
            rows = s.scalars(select(JobParamRow).where(JobParamRow.job_id == job_id)).all()
            return {r.key: json.loads(r.value) for r in rows}

    def set_job_io(self, job_id: str, direction: str, items: Iterable[Mapping[str, Any]]) -> None:
        with self._writing() as s:
            s.execute(delete(JobIORow).where(JobIORow.job_id == job_id,
                                             JobIORow.direction == direction))
            for item in items:
                s.add(JobIORow(job_id=job_id, direction=direction, **item))

    def job_io(self, job_id: str) -> list[JobIO]:
        with self._read() as s:
            rows = s.scalars(select(JobIORow).where(JobIORow.job_id == job_id)
                             .order_by(JobIORow.direction, JobIORow.name)).all()
            return [_io(r) for r in rows]

    def jobs_using(self, kind: str, name: str, version: str) -> list[str]:
        with self._read() as s:
            return list(s.scalars(select(JobIORow.job_id).where(
                JobIORow.asset_kind == kind, JobIORow.asset_name == name,
                JobIORow.asset_version == version, JobIORow.direction == "input")).all())

    def iter_active_jobs(self) -> Iterator[Job]:
        with self._read() as s:
            rows = s.scalars(select(JobRow).where(JobRow.status.in_(ACTIVE_VALUES))).all()
            jobs = [_job(r) for r in rows]
        yield from jobs


def _filtered(stmt: Any, status: Iterable[str] | None, experiment: str | None,
              parent_id: str | None, top_level: bool, created_by: str | None = None) -> Any:
    """The filters :meth:`JobStoreMixin.list_jobs` and ``count_jobs`` share; ``created_by``
    matches that user exactly or as ``user@<any host>``."""
    if created_by is not None:
        stmt = stmt.where(or_(JobRow.created_by == created_by,
                              JobRow.created_by.startswith(f"{created_by}@", autoescape=True)))
    if status:
        stmt = stmt.where(JobRow.status.in_(list(status)))
    if experiment:
        stmt = stmt.where(JobRow.experiment == experiment)
    if parent_id is not None:
        stmt = stmt.where(JobRow.parent_id == parent_id)
    elif top_level:
        stmt = stmt.where(JobRow.parent_id.is_(None))
    return stmt


def _io(r: JobIORow) -> JobIO:
    asset = f"{r.asset_kind}:{r.asset_name}:{r.asset_version}" if r.asset_kind else None
    return JobIO(direction=r.direction, name=r.name, type=r.type, uri=r.uri,
                 value=json.loads(r.value) if r.value else None, asset=asset)
