"""The job record: what was asked, where it ran, how it went."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class JobStatus(str, Enum):
    QUEUED = "Queued"
    PREPARING = "Preparing"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    def __str__(self) -> str:
        return self.value


ACTIVE = (JobStatus.QUEUED, JobStatus.PREPARING, JobStatus.RUNNING)
TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)
ACTIVE_VALUES = tuple(s.value for s in ACTIVE)
TERMINAL_VALUES = tuple(s.value for s in TERMINAL)


class JobEvent(BaseModel):
    status: str
    at: datetime
    message: str | None = None


class Metric(BaseModel):
    key: str
    value: float
    step: int | None = None
    at: datetime


class JobIO(BaseModel):
    direction: str
    name: str
    type: str
    uri: str | None = None
    value: Any = None
    asset: str | None = None  # kind:name:version


class Job(BaseModel):
    id: str
    type: str
    display_name: str | None = None
    experiment: str = "default"
    status: str
    parent_id: str | None = None
    step_name: str | None = None
    compute: str
    environment: str | None = None
    env_hash: str | None = None
    image: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_requested: bool = False
    runner_pid: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    created_by: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_VALUES

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at
        if end is None:
            from datetime import timezone

            end = datetime.now(timezone.utc)
        return (end - self.started_at).total_seconds()

    @property
    def host(self) -> str | None:
        """The machine whose runner runs the job (recorded since team workspaces; None before)."""
        recorded = self.spec.get("runner_host")
        host = recorded.get("host") if isinstance(recorded, dict) else None
        return host if isinstance(host, str) else None

    def public_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["duration_s"] = self.duration_s
        data["host"] = self.host
        return data


class JobDetail(BaseModel):
    """One view of a job, shown alike by the CLI (``mlws job show``), REST and the magics."""

    job: Job
    events: list[JobEvent] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: list[Metric] = Field(default_factory=list)
    inputs: list[JobIO] = Field(default_factory=list)
    outputs: list[JobIO] = Field(default_factory=list)
    produced: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)
    progress: dict[str, int] | None = None

    @property
    def latest_metrics(self) -> dict[str, float]:
        """The last value logged for each metric key (the metrics summary)."""
        last: dict[str, float] = {}
        for m in self.metrics:
            last[m.key] = m.value
        return last

    def public_dict(self) -> dict[str, Any]:
        """The job's fields with the rest beside them (the REST ``JobDetail`` body)."""
        return {
            **self.job.public_dict(),
            "events": [e.model_dump(mode="json") for e in self.events],
            "params": self.params,
            "metrics": [m.model_dump(mode="json") for m in self.metrics],
            "latest_metrics": self.latest_metrics,
            "inputs": [x.model_dump(mode="json") for x in self.inputs],
            "outputs": [x.model_dump(mode="json") for x in self.outputs],
            "produced": self.produced,
            "children": self.children,
            "progress": self.progress,
        }
