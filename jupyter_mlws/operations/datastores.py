"""``ws.datastores``: where data lives. Credentials go to a separate table and never come out
of any listing, log or API answer; only :meth:`credentials` hands them to code that connects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from jupyter_mlws.artifacts import PutSession
from jupyter_mlws.assets.datastore import Datastore, DatastoreSpec
from jupyter_mlws.operations.base import AssetOperations, Prepared

DEFAULT_DATASTORE = "local"


class DatastoreOperations(AssetOperations[DatastoreSpec, Datastore]):
    kind = "datastore"
    spec_class = DatastoreSpec

    def create(
        self,
        name: str | None = None,
        *,
        type: str = "local",
        path: str | Path | None = None,
        url: str | None = None,
        credentials: dict[str, str] | None = None,
        storage_options: dict[str, Any] | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        spec: DatastoreSpec | None = None,
    ) -> Datastore:
        if spec is None:
            from jupyter_mlws.assets.yaml_io import validate_spec

            if path is not None:  # a folder given here is named from where the caller stands
                path = Path(path).expanduser().resolve()
            fields: dict[str, Any] = {
                "name": name, "type": type, "path": None if path is None else str(path),
                "url": url, "credentials": credentials or {},
                "storage_options": storage_options or {}, "description": description,
                "tags": tags or {},
            }
            spec = validate_spec(DatastoreSpec, {k: v for k, v in fields.items() if v is not None})
        return self.register(spec)

    def _prepare(self, spec: DatastoreSpec, session: PutSession) -> Prepared:
        data = spec.content()
        secret = spec.secret()
        data["credential_names"] = sorted(secret)
        digest = (
            hashlib.sha256(json.dumps(secret, sort_keys=True).encode()).hexdigest()
            if secret
            else None
        )
        return Prepared(spec=data, secret=secret or None, hash_extra={"secret": digest})

    def create_builtin_local(self, artifacts_dir: str) -> Datastore:
        """The workspace's own ``local`` datastore: a path relative to the workspace folder, so
        the workspace can be moved."""
        return self.register(DatastoreSpec(name=DEFAULT_DATASTORE, type="local",
                                           path=artifacts_dir,
                                           description="The workspace's own artifact folder."))

    def credentials(self, name: str, version: str | None = None) -> dict[str, str]:
        """The secret values, for code that opens a connection. Never print them."""
        ds = self.get(name, version)
        return dict(self._store.get_secret(self.kind, ds.name, ds.version) or {})

    def root(self, name: str) -> str:
        """The folder or URL a datastore points at (relative local paths: inside the workspace)."""
        ds = self.get(name)
        if ds.type == "local":
            p = Path(ds.spec["path"])
            return str(p if p.is_absolute() else (self._ws.path / p).resolve())
        return str(ds.spec["url"])

    def fs(self, name: str) -> Any:
        """An fsspec filesystem and root for a datastore, with its credentials applied."""
        import fsspec

        ds = self.get(name)
        if ds.type == "local":
            return fsspec.filesystem("file"), self.root(name)
        url = str(ds.spec["url"])
        options = {**ds.spec.get("storage_options", {}), **self.credentials(name)}
        fs, root = fsspec.core.url_to_fs(url, **options)
        return fs, root
