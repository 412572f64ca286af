"""``ws.registries``: the registries a user knows, sharing into them, and using their assets.

Sharing copies a version's definition and the blobs it refers to into the registry. Using one
(``azureml://registries/<r>/environments/<n>/labels/latest`` and the like, from any workspace)
imports it into the workspace under a hidden name made from its content, so it never collides
with the user's names, and records where it came from in its tags (``registry``,
``registry_asset``) and in the notes of the jobs that use it.
"""

from __future__ import annotations

import builtins
import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.assets.base import Asset, RegistryRef, validate_name, validate_version
from jupyter_mlws.assets.environment import Environment
from jupyter_mlws.errors import (
    RegistryConflictError,
    RegistryCorruptError,
    RegistryLocationError,
    RegistryNotFoundError,
    RegistryReadOnlyError,
    ValidationError,
)
from jupyter_mlws.registries import config
from jupyter_mlws.registries.builtin import BUILTIN_NAME, BuiltinRegistry
from jupyter_mlws.registries.catalog import REGISTRY_FILE, FolderRegistry, RegistryEntry, entry_hash
from jupyter_mlws.registries.storage import open_storage

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace

Registry = FolderRegistry | BuiltinRegistry
IMPORT_PREFIX = "anon_"
#: Tags an imported version carries: where it came from.
TAG_REGISTRY = "registry"
TAG_ASSET = "registry_asset"
TAG_NOTE = "registry_note"
SHARED_KINDS = ("environment", "model", "component")


class RegistryOperations:
    """Registries of this user, seen from one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    # --- the registries --------------------------------------------------------------------

    def open(self, name: str) -> Registry:
        """The registry called ``name`` (``azureml`` is built in)."""
        if name.lower() == BUILTIN_NAME:
            return BuiltinRegistry()
        known = config.read_registries()
        if name not in known:
            names = ", ".join([BUILTIN_NAME, *sorted(known)])
            raise RegistryNotFoundError(
                f"No registry named {name!r} is known to this user.",
                hint=f"Known registries: {names}. Add one with `mlws registry create {name} "
                f"--path DIR` (an existing registry folder is attached as it is); the list is "
                f"kept in {config.config_file()}.")
        return FolderRegistry(name, open_storage(known[name]["location"]))

    def create(self, name: str, path: str | Path, *, description: str | None = None
               ) -> dict[str, Any]:
        """Make ``path`` a registry called ``name`` (or attach the registry already there) and
        add it to this user's list, so every workspace of the user resolves it."""
        validate_name(name, what="registry name")
        if name.lower() == BUILTIN_NAME:
            raise RegistryConflictError(f"{BUILTIN_NAME!r} is the built-in registry's name.",
                                        hint="Choose another name.")
        storage = open_storage(str(path))
        with config.editing() as table:
            if name in table and table[name]["location"] != storage.location:
                raise RegistryConflictError(
                    f"The registry {name!r} is already known, at {table[name]['location']!r}.",
                    hint=f"Delete it from the list first (`mlws registry delete {name}`), or "
                    "choose another name.")
            folder = Path(storage.location)
            if folder.exists() and not folder.is_dir():
                raise RegistryLocationError(f"{storage.location!r} is a file, not a folder.",
                                            hint="Give a folder for the registry.")
            if folder.is_dir() and not (folder / REGISTRY_FILE).exists() and any(
                    folder.iterdir()):
                raise RegistryLocationError(
                    f"The folder {storage.location!r} has files and is not a registry.",
                    hint="Give an empty or new folder, or a registry's folder to attach it.")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RegistryLocationError(
                    f"Cannot make the folder {storage.location!r}: {exc.strerror}.",
                    hint="Give a folder you may write to.") from None
            registry = FolderRegistry(name, storage)
            created = registry.initialize(description)
            table[name] = {"location": storage.location}
        return {**self._summary(registry), "created": created}

    def _summary(self, registry: Registry) -> dict[str, Any]:
        entries = registry.entries()
        counts = {k: len({e.name for e in entries if e.kind == k}) for k in SHARED_KINDS}
        if isinstance(registry, FolderRegistry):
            description = (registry.header() or {}).get("description")
        else:
            description = "Local equivalents of Azure's curated environments."
        return {"name": registry.name, "location": registry.location,
                "builtin": registry.read_only, "description": description, **counts}

    def list(self) -> builtins.list[dict[str, Any]]:
        """The built-in registry, then this user's, by name."""
        out = [self._summary(BuiltinRegistry())]
        for name in sorted(config.read_registries()):
            try:
                out.append(self._summary(self.open(name)))
            except (RegistryLocationError, RegistryCorruptError) as exc:
                out.append({"name": name, "location": "?", "error": str(exc)})
        return out

    def show(self, name: str) -> dict[str, Any]:
        """A registry and every version it holds."""
        registry = self.open(name)
        rows = [{"kind": e.kind, "name": e.name, "version": e.version, "uri": e.uri,
                 "description": e.description, "shared_at": e.shared_at or None,
                 "shared_by": e.shared_by}
                for e in sorted(registry.entries(), key=lambda e: (e.kind, e.name, e.version))]
        data = {**self._summary(registry), "assets": rows}
        if registry.read_only:
            from jupyter_mlws.registries.builtin import catalog_table

            data["curated"] = catalog_table()
        return data

    def delete(self, name: str, *, purge: bool = False) -> dict[str, Any]:
        """Forget the registry (its folder stays, for other users) or, with ``purge``, delete
        its folder too."""
        if name.lower() == BUILTIN_NAME:
            raise RegistryReadOnlyError("The built-in registry 'azureml' is read-only: it cannot be "
                                        "deleted.")
        registry = self.open(name)
        with config.editing() as table:
            table.pop(name, None)
        folder = Path(registry.location)
        if purge and (folder / REGISTRY_FILE).is_file():
            shutil.rmtree(folder)
        return {"name": name, "location": registry.location, "purged": purge}

    # --- sharing ---------------------------------------------------------------------------

    def share(self, kind: str, ref: str, registry: str, *, name: str | None = None,
              version: str | None = None) -> RegistryEntry:
        """Copy ``ref`` (``NAME:VERSION``, ``NAME`` for the latest) of this workspace into
        ``registry``; the same content shared again is returned unchanged."""
        if kind not in SHARED_KINDS:
            raise ValidationError(f"A {kind} cannot be shared into a registry.",
                                  hint="Registries hold environments, models and components.")
        target = self.open(registry)
        if target.read_only:
            raise RegistryReadOnlyError(
                f"The built-in registry {BUILTIN_NAME!r} is read-only: it ships with the "
                "package.", hint="Create a registry of your own (`mlws registry create NAME "
                "--path DIR`) and share into it.")
        asset = self._ws.operations(kind).get(ref)
        spec = self._portable(kind, dict(asset.spec))
        entry = RegistryEntry(
            registry=target.name, kind=kind, name=validate_name(name or asset.name),
            version=validate_version(version or asset.version), spec=spec,
            content_hash=entry_hash(kind, spec), description=asset.description,
            tags={k: v for k, v in asset.tags.items() if k not in (TAG_REGISTRY, TAG_ASSET)},
            shared_by=asset.created_by)
        blobs = {sha: self._ws.artifacts.blob_path(sha) for sha in self._blobs(spec)}
        entry.blobs = sorted(blobs)
        if isinstance(asset, Environment):
            envs = self._ws.environments
            entry.locks = {py: text for py in envs.lock_pythons(asset.env_hash)
                           if (text := envs.lock_text(asset.env_hash, py))}
        stored, _created = target.add(entry, blobs)
        return stored

    def _portable(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        """A component's environment travels with it, as an inline definition."""
        spec.pop("source", None)
        env = spec.get("environment")
        if kind == "component" and isinstance(env, str):
            spec["environment"] = dict(self._ws.environments.get(env).spec)
        return spec

    def _blobs(self, spec: Any) -> set[str]:
        """Every blob a stored spec refers to: files, folders (their manifest and files) and
        Docker build contexts."""
        found: set[str] = set()
        if isinstance(spec, dict):
            if spec.get("kind") in ("file", "folder") and isinstance(spec.get("sha256"), str):
                found.add(spec["sha256"])
                if spec["kind"] == "folder":
                    found |= {sha for _r, sha, _n, _x in self._ws.artifacts.manifest(spec["sha256"])}
            tree = spec.get("tree_sha256")
            if isinstance(tree, str):
                found.add(tree)
                found |= {f[1] for f in spec.get("files") or [] if isinstance(f, (list, tuple))}
            for value in spec.values():
                found |= self._blobs(value)
        elif isinstance(spec, list):
            for value in spec:
                found |= self._blobs(value)
        return found

    # --- using -----------------------------------------------------------------------------

    def use(self, ref: RegistryRef) -> Asset:
        """The registry version ``ref`` names, imported into this workspace (once)."""
        registry = self.open(ref.registry)
        entry = registry.get(ref.kind, ref.name, ref.version)
        return self._import(registry, entry)

    def _import(self, registry: Registry, entry: RegistryEntry) -> Asset:
        ws = self._ws
        lineage = {TAG_REGISTRY: entry.registry, TAG_ASSET: entry.uri}
        if entry.notes:
            lineage[TAG_NOTE] = "\n".join(entry.notes)
        spec = dict(entry.spec)
        with ws.artifacts.session() as session:  # the copied blobs stay pinned meanwhile
            for sha in entry.blobs:
                if not ws.artifacts.has(sha):
                    got, _size = ws.artifacts.put_file(registry.open_blob(sha), session)
                    if got != sha:
                        raise RegistryCorruptError(
                            f"The blob {sha[:12]} of {entry.uri} does not hold what its name "
                            "says.", hint="Share the asset into the registry again.")
            if entry.kind == "environment":
                asset: Asset = ws.environments.register_anonymous(spec)
                for py, text in (entry.locks or {}).items():
                    assert isinstance(asset, Environment)
                    if ws.environments.lock_text(asset.env_hash, py) is None:
                        ws.environments.set_lock(asset.env_hash, py, text, builder="registry")
            else:
                if entry.kind == "component" and isinstance(spec.get("environment"), dict):
                    env = ws.environments.register_anonymous(spec["environment"])
                    spec["environment"] = f"mlws:{env.name}:{env.version}"
                digest = hashlib.sha256(f"{entry.kind}:{entry.content_hash}".encode())
                asset = ws.operations(entry.kind).import_version(
                    IMPORT_PREFIX + digest.hexdigest()[:32], spec,
                    description=entry.description, tags=dict(entry.tags))
        if any(asset.tags.get(k) != v for k, v in lineage.items()):
            asset = ws.operations(entry.kind).update(asset.name, asset.version, tags=lineage)
        return asset

    @staticmethod
    def notes_for(asset: Asset | None) -> builtins.list[str]:
        """Lines for a job's log saying which registry asset ``asset`` came from."""
        if asset is None or not asset.tags.get(TAG_ASSET):
            return []
        lines = [f"note: {asset.kind} {asset.tags[TAG_ASSET]} from the registry "
                 f"{asset.tags.get(TAG_REGISTRY)!r} runs as {asset.ref} in this workspace"]
        note = asset.tags.get(TAG_NOTE)
        return lines + (note.splitlines() if note else [])
