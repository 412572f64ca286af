"""ORM rows. Nothing outside ``store/`` imports this module; rows become entities via ``to_entity``.

Only portable SQL types and constructs are used, so the same schema runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: datetime | None) -> datetime | None:
    """``value`` as UTC-aware (SQLite hands back naive datetimes)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class AssetNameRow(Base):
    """One row per (kind, name): the counter that hands out the next integer version."""

    __tablename__ = "asset_names"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    next_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    next_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssetVersionRow(Base):
    __tablename__ = "asset_versions"
    __table_args__ = (
        UniqueConstraint("kind", "name", "version", name="uq_asset_version"),
        Index("ix_asset_versions_latest", "kind", "name", "archived", "seq"),
        Index("ix_asset_versions_env_hash", "env_hash"),
        Index("ix_asset_versions_kind_seen", "kind", "hidden", "archived"),
        Index("ix_asset_versions_job", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    #: Order of creation within a name: "latest" is the highest unarchived seq.
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    spec: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    hidden: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    curated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    env_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)

    tags: Mapped[list[AssetTagRow]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", lazy="selectin"
    )

    def to_entity_dict(self) -> dict[str, Any]:
        created = aware(self.created_at)
        extra = {"stored_hash": self.env_hash} if self.kind == "environment" else {}
        return {
            **extra,
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "tags": {t.key: t.value for t in self.tags},
            "archived": self.archived,
            "hidden": self.hidden,
            "curated": self.curated,
            "created_at": created,
            "created_by": self.created_by,
            "content_hash": self.content_hash,
            "job_id": self.job_id,
            "spec": json.loads(self.spec),
        }


class AssetTagRow(Base):
    __tablename__ = "asset_tags"
    __table_args__ = (Index("ix_asset_tags_kv", "key", "value"),)

    asset_id: Mapped[int] = mapped_column(
        ForeignKey("asset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False, default="")

    asset: Mapped[AssetVersionRow] = relationship(back_populates="tags")


class SecretRow(Base):
    """Credentials of an asset (datastores), kept apart from the asset table."""

    __tablename__ = "asset_secrets"

    asset_id: Mapped[int] = mapped_column(
        ForeignKey("asset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(Text, nullable=False)


class MetaRow(Base):
    __tablename__ = "workspace_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class EnvironmentBuildRow(Base):
    """The latest build of one environment hash by one builder (docker or venv)."""

    __tablename__ = "environment_builds"

    env_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    builder: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # building|succeeded|failed
    environment: Mapped[str | None] = mapped_column(String(330), nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    log: Mapped[str] = mapped_column(Text, nullable=False, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_hash": self.env_hash,
            "builder": self.builder,
            "status": self.status,
            "environment": self.environment,
            "result": json.loads(self.result) if self.result else None,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class JobRow(Base):
    """One job (a notebook, a command, a pipeline, or a pipeline's step)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_parent", "parent_id"),
        Index("ix_jobs_created", "created_at"),
        Index("ix_jobs_experiment", "experiment"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), nullable=False)  # notebook|command|pipeline
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    experiment: Mapped[str] = mapped_column(String(255), nullable=False, default="default")
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    step_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    compute: Mapped[str] = mapped_column(String(255), nullable=False)
    environment: Mapped[str | None] = mapped_column(String(330), nullable=True)
    env_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[str] = mapped_column(Text, nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    runner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class JobEventRow(Base):
    """Every status a job went through, with its time."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobMetricRow(Base):
    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_job", "job_id", "key", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobParamRow(Base):
    __tablename__ = "job_params"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class JobIORow(Base):
    """What a job consumed (inputs) and produced (outputs): its lineage."""

    __tablename__ = "job_io"
    __table_args__ = (Index("ix_job_io_asset", "asset_kind", "asset_name", "asset_version"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)  # input|output
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    asset_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    asset_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    asset_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
