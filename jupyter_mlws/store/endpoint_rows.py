"""ORM rows of online endpoints and their deployments (migration 0005)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jupyter_mlws.endpoints.model import OnlineDeployment, OnlineEndpoint
from jupyter_mlws.store.rows import Base, aware, utcnow


class OnlineEndpointRow(Base):
    __tablename__ = "online_endpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[str] = mapped_column(Text, nullable=False)
    port: Mapped[int] = mapped_column(Integer, nullable=False)
    traffic: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    #: The Fernet-encrypted keys (see :mod:`jupyter_mlws.crypto`), never plain text.
    keys: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> OnlineEndpoint:
        return OnlineEndpoint(name=self.name, spec=json.loads(self.spec), port=self.port,
                              traffic=json.loads(self.traffic), keys=json.loads(self.keys),
                              created_at=aware(self.created_at),
                              updated_at=aware(self.updated_at))


class OnlineDeploymentRow(Base):
    __tablename__ = "online_deployments"

    endpoint_name: Mapped[str] = mapped_column(
        ForeignKey("online_endpoints.name", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[str] = mapped_column(Text, nullable=False)
    resolved: Mapped[str] = mapped_column(Text, nullable=False)
    generation: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> OnlineDeployment:
        return OnlineDeployment(endpoint_name=self.endpoint_name, name=self.name,
                                spec=json.loads(self.spec), resolved=json.loads(self.resolved),
                                generation=self.generation, created_at=aware(self.created_at),
                                updated_at=aware(self.updated_at))
