"""Online endpoint records on the SQLAlchemy store (mixed into :class:`SqlStore`)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jupyter_mlws.endpoints.model import OnlineDeployment, OnlineEndpoint
from jupyter_mlws.errors import ConflictError, NotFoundError
from jupyter_mlws.store.endpoint_rows import OnlineDeploymentRow, OnlineEndpointRow
from jupyter_mlws.store.rows import utcnow


class EndpointStoreMixin:
    """Needs ``_read()`` and ``_writing()`` session factories from the store."""

    _read: Any

    def _writing(self) -> AbstractContextManager[Session]:  # provided by SqlStore
        raise NotImplementedError

    @staticmethod
    def _endpoint_row(s: Session, name: str) -> OnlineEndpointRow:
        row = s.get(OnlineEndpointRow, name)
        if row is None:
            raise NotFoundError(f"No online endpoint {name!r} in this workspace.",
                                hint="List them with `mlws online-endpoint list`.")
        return row

    def create_endpoint(self, name: str, *, spec: dict[str, Any], port: int,
                        keys: dict[str, Any], traffic: dict[str, int]) -> OnlineEndpoint:
        """Record a new endpoint (a :class:`ConflictError` when the name is taken)."""
        try:
            with self._writing() as s:
                now = utcnow()
                row = OnlineEndpointRow(name=name, spec=json.dumps(spec), port=port,
                                        keys=json.dumps(keys), traffic=json.dumps(traffic),
                                        created_at=now, updated_at=now)
                s.add(row)
                s.flush()
                return row.to_entity()
        except IntegrityError:
            raise ConflictError(f"The online endpoint {name!r} already exists.",
                                hint="Pick another name, or `mlws online-endpoint delete "
                                f"-n {name}` first.") from None

    def update_endpoint(self, name: str, **fields: Any) -> OnlineEndpoint:
        """Change ``spec``, ``port``, ``keys`` or ``traffic`` of an endpoint."""
        with self._writing() as s:
            row = self._endpoint_row(s, name)
            for key, value in fields.items():
                setattr(row, key, value if key == "port" else json.dumps(value))
            row.updated_at = utcnow()
            s.flush()
            return row.to_entity()

    def get_endpoint(self, name: str) -> OnlineEndpoint:
        with self._read() as s:
            return self._endpoint_row(s, name).to_entity()

    def list_endpoints(self) -> list[OnlineEndpoint]:
        with self._read() as s:
            rows = s.scalars(select(OnlineEndpointRow).order_by(OnlineEndpointRow.name))
            return [r.to_entity() for r in rows]

    def delete_endpoint(self, name: str) -> None:
        with self._writing() as s:
            row = self._endpoint_row(s, name)
            for dep in s.scalars(select(OnlineDeploymentRow).where(
                    OnlineDeploymentRow.endpoint_name == name)):
                s.delete(dep)
            s.delete(row)

    def put_deployment(self, endpoint: str, name: str, *, spec: dict[str, Any],
                       resolved: dict[str, Any]) -> OnlineDeployment:
        """Create a deployment, or replace it (its ``generation`` goes up by one)."""
        with self._writing() as s:
            self._endpoint_row(s, endpoint)
            row = s.get(OnlineDeploymentRow, (endpoint, name))
            now = utcnow()
            if row is None:
                row = OnlineDeploymentRow(endpoint_name=endpoint, name=name, generation=1,
                                          created_at=now)
                s.add(row)
            else:
                row.generation += 1
            row.spec = json.dumps(spec)
            row.resolved = json.dumps(resolved)
            row.updated_at = now
            s.flush()
            return row.to_entity()

    def get_deployment(self, endpoint: str, name: str) -> OnlineDeployment:
        with self._read() as s:
            row = s.get(OnlineDeploymentRow, (endpoint, name))
            if row is None:
                raise NotFoundError(
                    f"No deployment {name!r} in the online endpoint {endpoint!r}.",
                    hint=f"List them with `mlws online-deployment list -e {endpoint}`.")
            return row.to_entity()

    def list_deployments(self, endpoint: str) -> list[OnlineDeployment]:
        with self._read() as s:
            rows = s.scalars(select(OnlineDeploymentRow).where(
                OnlineDeploymentRow.endpoint_name == endpoint).order_by(OnlineDeploymentRow.name))
            return [r.to_entity() for r in rows]

    def delete_deployment(self, endpoint: str, name: str) -> None:
        with self._writing() as s:
            row = s.get(OnlineDeploymentRow, (endpoint, name))
            if row is None:
                raise NotFoundError(
                    f"No deployment {name!r} in the online endpoint {endpoint!r}.",
                    hint=f"List them with `mlws online-deployment list -e {endpoint}`.")
            s.delete(row)
