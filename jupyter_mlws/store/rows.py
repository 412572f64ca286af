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
        created = self.created_at
        if created.tzinfo is None:  # SQLite hands back naive datetimes
            created = created.replace(tzinfo=timezone.utc)
        return {
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
