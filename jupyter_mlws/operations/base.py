"""What every asset kind's operations share: register, get, list, archive, restore, update."""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from jupyter_mlws.artifacts import PutSession
from jupyter_mlws.assets.base import (
    Asset,
    AssetSpec,
    RegistryRef,
    is_azureml_curated,
    is_registry_uri,
    parse_ref,
    parse_registry_ref,
    validate_description,
    validate_name,
    validate_tags,
    validate_version,
)
from jupyter_mlws.assets.yaml_io import LineIndex, validate_spec
from jupyter_mlws.errors import AssetNotFoundError, RegistryAssetNotFoundError, ValidationError
from jupyter_mlws.store.base import NewVersion

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace

S = TypeVar("S", bound=AssetSpec)
E = TypeVar("E", bound=Asset)


@dataclass
class Prepared:
    """A spec made ready to store: its stored form plus what goes beside it."""

    spec: dict[str, Any]
    env_hash: str | None = None
    job_id: str | None = None
    secret: dict[str, Any] | None = None
    hidden: bool = False
    curated: bool = False
    reuse_identical_latest: bool = False
    #: Extra material for the content hash that is not stored in the spec (e.g. a secret digest).
    hash_extra: dict[str, Any] = field(default_factory=dict)


def content_hash(spec: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    # where files were copied from is informative: only their bytes count
    body = {k: v for k, v in spec.items() if k != "source"}
    payload = {"spec": body, **({"extra": extra} if extra else {})}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _checked_description(description: Any) -> str | None:
    """A new description as registration accepts it (bounded, no NUL)."""
    try:
        return validate_description(description)
    except ValueError as exc:
        raise ValidationError(f"Invalid description: {exc}.",
                              hint="Give plain text without NUL, at most 10,000 characters.") from None


def _checked_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags as :func:`validate_tags` accepts them (no silent ``str()`` of lists or mappings)."""
    try:
        return validate_tags(dict(tags or {}))
    except ValueError as exc:
        raise ValidationError(f"Invalid tags: {exc}.") from None


def _user() -> str | None:
    """Who records a version or a job: ``$MLWS_USER``, else ``user@host``."""
    from jupyter_mlws.team.identity import current_user

    return current_user()


class AssetOperations(Generic[S, E]):
    """Operations on one kind of asset. Subclasses implement :meth:`_prepare`."""

    kind: str
    spec_class: type[S]

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._store = workspace.store

    # --- registration -----------------------------------------------------------------------------

    def _prepare(self, spec: S, session: PutSession) -> Prepared:
        """Turn a validated spec into its stored form (copying any files into the store)."""
        return Prepared(spec=spec.content())

    def _check_name(self, spec: S) -> None:
        """A hook for reserved names."""

    def register(self, spec: S) -> E:
        """Register ``spec`` as a new version (or return the identical existing one).

        The blobs it stores or reuses stay pinned until the version is committed; when the
        registration fails, only the blobs that nothing else uses are taken back.
        """
        self._check_name(spec)
        artifacts = self._ws.artifacts
        with artifacts.session() as session:
            try:
                prepared = self._prepare(spec, session)
                entity, _created = self._store.create_version(self._new_version(spec, prepared))
            except BaseException:
                artifacts.rollback(session, referenced=lambda: artifacts.referenced_by(self._store))
                raise
        return entity  # type: ignore[return-value]

    def _new_version(self, spec: S, prepared: Prepared) -> NewVersion:
        return NewVersion(
            kind=self.kind,
            name=spec.name,
            version=spec.version,
            content_hash=content_hash(prepared.spec, prepared.hash_extra),
            spec=prepared.spec,
            description=spec.description,
            tags=dict(spec.tags),
            hidden=prepared.hidden,
            curated=prepared.curated,
            env_hash=prepared.env_hash,
            job_id=prepared.job_id,
            created_by=_user(),
            secret=prepared.secret,
            reuse_identical_latest=prepared.reuse_identical_latest,
        )

    def create_from_dict(
        self,
        data: Mapping[str, Any],
        *,
        base_dir: Path | None = None,
        source: str | None = None,
        index: LineIndex | None = None,
    ) -> E:
        """Register from a YAML-shaped mapping; relative paths resolve against ``base_dir``."""
        cleaned = self._drop_ignored(dict(data))
        cleaned = self._prepare_yaml(cleaned, base_dir or Path.cwd(), source or "<spec>")
        spec = validate_spec(self.spec_class, cleaned, source=source, index=index)
        return self.register(spec)

    def _prepare_yaml(self, data: dict[str, Any], base_dir: Path, source: str) -> dict[str, Any]:
        """Resolve relative paths in a YAML mapping; kinds with paths override this."""
        for key in ("path", "code"):
            value = data.get(key)
            if isinstance(value, str) and "://" not in value and not value.startswith(
                ("azureml:", "mlws:")
            ):
                p = Path(value).expanduser()
                data[key] = str(p if p.is_absolute() else (base_dir / p))
        return data

    def _drop_ignored(self, data: dict[str, Any]) -> dict[str, Any]:
        ignored: frozenset[str] = getattr(self.spec_class, "ignored_fields", frozenset())
        return {k: v for k, v in data.items() if k not in ignored}

    # --- reading ----------------------------------------------------------------------------------

    def get(self, name: str, version: str | int | None = None, label: str | None = None) -> E:
        """One version: by ``version``, by ``label='latest'``, or the latest when neither.

        ``name`` may also be a reference such as ``name:3``, ``name@latest`` or
        ``azureml:name:3``, or name a registry's version (``azureml://registries/<r>/...``, or
        for environments an Azure curated name ``AzureML-...``): that version is imported into
        this workspace and returned.
        """
        if version is None and label is None and is_registry_uri(name):
            registry_ref = parse_registry_ref(name, kind=self.kind)
            assert registry_ref is not None
            return self._from_registry(registry_ref)
        if version is None and label is None and (":" in name or "@" in name):
            ref = parse_ref(name)
            name, version, label = ref.name, ref.version, ref.label
        validate_name(name)
        if label is not None and label != "latest":
            raise ValidationError(f"Unknown label {label!r}.", hint="The only label is 'latest'.")
        if version is not None and label is not None:
            raise ValidationError("Give a version or a label, not both.")
        v = None if version is None else validate_version(version)
        if self.kind == "environment" and is_azureml_curated(name):
            return self._curated(name, v)
        return self._store.get_version(self.kind, name, v)  # type: ignore[return-value]

    def _from_registry(self, ref: RegistryRef) -> E:
        return self._ws.registries.use(ref)  # type: ignore[return-value]

    def _curated(self, name: str, version: str | None) -> E:
        """An Azure curated name, from the built-in registry (one registered here before the
        name was reserved still answers when the registry has no such environment)."""
        ref = RegistryRef(registry="azureml", kind=self.kind, name=name, version=version)
        try:
            return self._from_registry(ref)
        except RegistryAssetNotFoundError:
            try:
                return self._store.get_version(self.kind, name, version)  # type: ignore[return-value]
            except AssetNotFoundError:
                pass
            raise

    def import_version(self, name: str, spec: dict[str, Any], *, description: str | None = None,
                       tags: Mapping[str, str] | None = None) -> E:
        """Register ``spec`` as stored (its blobs already in the workspace) under the hidden
        ``name``; the identical latest version of ``name`` is reused (imports from a registry)."""
        entity, _created = self._store.create_version(NewVersion(
            kind=self.kind, name=validate_name(name), version=None,
            content_hash=content_hash(spec), spec=spec, description=description,
            tags=_checked_tags(tags), hidden=True, created_by=_user(),
            reuse_identical_latest=True))
        return entity  # type: ignore[return-value]

    def list(
        self,
        name: str | None = None,
        *,
        tags: Mapping[str, str | None] | None = None,
        include_archived: bool = False,
        include_hidden: bool = False,
        limit: int | None = None,
        offset: int = 0,
        name_contains: str | None = None,
        created_by: str | None = None,
    ) -> builtins.list[E]:
        """Versions of ``name``, newest first; without a name, the latest version of each name
        (only names containing ``name_contains``, ignoring case, when given; ``created_by``: only
        that user's, ``ME`` for yours, see :mod:`jupyter_mlws.team.identity`)."""
        from jupyter_mlws.team.identity import resolve

        if name is not None:
            validate_name(name)
        return self._store.list_versions(  # type: ignore[return-value]
            self.kind,
            name,
            tags=tags,
            include_archived=include_archived,
            include_hidden=include_hidden,
            limit=limit,
            offset=offset,
            name_contains=name_contains,
            created_by=resolve(created_by),
        )

    def count(
        self,
        name: str | None = None,
        *,
        tags: Mapping[str, str | None] | None = None,
        include_archived: bool = False,
        include_hidden: bool = False,
        name_contains: str | None = None,
        created_by: str | None = None,
    ) -> int:
        """How many :meth:`list` gives with the same filters: versions of ``name``, or names."""
        from jupyter_mlws.team.identity import resolve

        return self._store.count_versions(
            self.kind,
            name,
            tags=tags,
            include_archived=include_archived,
            include_hidden=include_hidden,
            name_contains=name_contains,
            created_by=resolve(created_by),
        )

    def names(self) -> builtins.list[str]:
        return self._store.names(self.kind)

    # --- metadata ---------------------------------------------------------------------------------

    def archive(self, name: str, version: str | int | None = None) -> int:
        """Archive one version, or every version of ``name``; archived versions are not latest."""
        return self._store.set_archived(
            self.kind, validate_name(name), None if version is None else str(version), True
        )

    def restore(self, name: str, version: str | int | None = None) -> int:
        return self._store.set_archived(
            self.kind, validate_name(name), None if version is None else str(version), False
        )

    def update(
        self,
        name: str,
        version: str | int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        remove_tags: builtins.list[str] | None = None,
    ) -> E:
        """Change the mutable metadata of a version (content never changes)."""
        return self._store.update_metadata(  # type: ignore[return-value]
            self.kind,
            validate_name(name),
            validate_version(version),
            description=_checked_description(description),
            set_tags=_checked_tags(tags),
            remove_tags=remove_tags,
        )
