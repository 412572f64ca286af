"""``ws.datastores``: where data lives. Credentials are encrypted (see :mod:`jupyter_mlws.crypto`)
into a separate table and never come out of any listing, log, hash or API answer; only
:meth:`credentials` hands them to code that connects."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from jupyter_mlws.artifacts import PutSession
from jupyter_mlws.assets.datastore import Datastore, DatastoreSpec
from jupyter_mlws.crypto import SecretBox, is_encrypted
from jupyter_mlws.errors import AssetNotFoundError, VersionConflictError
from jupyter_mlws.operations.base import AssetOperations, Prepared

DEFAULT_DATASTORE = "local"
DEFAULT_BLOBSTORE = "workspaceblobstore"


class DatastoreOperations(AssetOperations[DatastoreSpec, Datastore]):
    kind = "datastore"
    spec_class = DatastoreSpec
    #: Azure's default datastore: here a folder of the workspace (``datastores/...``).
    DEFAULT_BLOBSTORE = DEFAULT_BLOBSTORE

    def create(
        self,
        name: str | None = None,
        *,
        type: str = "local",
        path: str | Path | None = None,
        url: str | None = None,
        credentials: dict[str, str] | None = None,
        storage_options: dict[str, Any] | None = None,
        version: str | int | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        spec: DatastoreSpec | None = None,
    ) -> Datastore:
        if spec is None:
            from jupyter_mlws.assets.yaml_io import validate_spec

            if path is not None:  # a folder given here is named from where the caller stands
                # not a possible path (NUL, too long): validation says so
                with contextlib.suppress(OSError, ValueError):
                    path = Path(path).expanduser().resolve()
            fields: dict[str, Any] = {
                "name": name, "type": type, "path": None if path is None else str(path),
                "url": url, "credentials": credentials or {},
                "storage_options": storage_options or {}, "version": version,
                "description": description,
                "tags": tags or {},
            }
            spec = validate_spec(DatastoreSpec, {k: v for k, v in fields.items() if v is not None})
        return self.register(spec)

    def _prepare(self, spec: DatastoreSpec, session: PutSession) -> Prepared:
        # The content hash covers the credential *names* only: a hash of the values would let
        # anyone who can read the hash confirm a guessed password.
        data = spec.content()
        secret = spec.secret()
        data["credential_names"] = sorted(secret)
        stored = SecretBox.load(create=True).encrypt(secret) if secret else None
        return Prepared(spec=data, secret=stored)

    def register(self, spec: DatastoreSpec) -> Datastore:
        """Register ``spec``. An explicit version that exists with the same content is returned
        when its credentials are the same too, and is a conflict when they differ (the hash,
        which leaves credentials out, cannot tell)."""
        if spec.version is not None:
            try:
                existing = self.get(spec.name, spec.version)
            except AssetNotFoundError:
                existing = None
            content = {**spec.content(), "credential_names": sorted(spec.secret())}
            if existing is not None and existing.spec == content:
                if self.credentials(existing.name, existing.version) == spec.secret():
                    return existing  # also a version wave 1 hashed with its secret
                raise VersionConflictError(
                    f"datastore {spec.name}:{spec.version} already exists with other "
                    "credentials.",
                    hint="Versions are immutable: leave the version out to register the new "
                    "credentials as the next version.",
                )
        return super().register(spec)

    def create_builtin_local(self, artifacts_dir: str) -> Datastore:
        """The workspace's own ``local`` datastore: a path relative to the workspace folder, so
        the workspace can be moved."""
        return self.register(DatastoreSpec(name=DEFAULT_DATASTORE, type="local",
                                           path=artifacts_dir,
                                           description="The workspace's own artifact folder."))

    def ensure_default_blobstore(self) -> Datastore:
        """``workspaceblobstore``, Azure's default datastore, as a folder of the workspace
        (made when missing): ``azureml://datastores/workspaceblobstore/paths/...`` is there."""
        if DEFAULT_BLOBSTORE in self.names():
            return self.get(DEFAULT_BLOBSTORE)
        folder = Path("datastores") / DEFAULT_BLOBSTORE
        (self._ws.path / folder).mkdir(parents=True, exist_ok=True)
        return self.register(DatastoreSpec(
            name=DEFAULT_BLOBSTORE, type="local", path=folder.as_posix(),
            description="Azure ML's default datastore, as a folder of this workspace."))

    def credentials(self, name: str, version: str | None = None) -> dict[str, str]:
        """The secret values, for code that opens a connection. Never print them.

        Secrets stored in plain text (by wave 1) are returned and encrypted in place.
        """
        ds = self.get(name, version)
        stored = self._store.get_secret(self.kind, ds.name, ds.version)
        if not stored:
            return {}
        if is_encrypted(stored):
            return SecretBox.load(create=False).decrypt(stored, what=f"datastore {ds.ref}")
        plain = {str(k): str(v) for k, v in stored.items()}
        self._reencrypt(ds, plain)
        return plain

    def encrypt_plaintext_secrets(self) -> int:
        """Encrypt every secret still stored in plain text; return how many there were."""
        count = 0
        for ds_name in self._store.names(self.kind, include_hidden=True):
            for ds in self.list(ds_name, include_archived=True, include_hidden=True):
                stored = self._store.get_secret(self.kind, ds.name, ds.version)
                if stored and not is_encrypted(stored):
                    self._reencrypt(ds, {str(k): str(v) for k, v in stored.items()})
                    count += 1
        return count

    def _reencrypt(self, ds: Datastore, plain: dict[str, str]) -> None:
        self._store.put_secret(self.kind, ds.name, ds.version,
                               SecretBox.load(create=True).encrypt(plain))

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
