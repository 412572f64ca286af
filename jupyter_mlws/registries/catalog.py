"""A registry's catalogue: shared versions of environments, models and components.

Layout of a registry (through :class:`~.storage.RegistryStorage`)::

    registry.yaml                              name, format, description
    environments|models|components/<name>/<version>.json   one shared version
    blobs/<sha[:2]>/<sha[2:]>                  the bytes those versions refer to

A version is written once: its blobs first, then its JSON file, created atomically by the first
writer. Sharing the same content again finds the file and changes nothing; other content under
the same name and version is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from jupyter_mlws.assets.base import REGISTRY_KINDS, REGISTRY_URI_PREFIX, validate_name
from jupyter_mlws.errors import (
    RegistryAssetNotFoundError,
    RegistryConflictError,
    RegistryCorruptError,
)
from jupyter_mlws.registries.storage import RegistryStorage

REGISTRY_FILE = "registry.yaml"
FORMAT = 1
PLURAL = {kind: plural for plural, kind in REGISTRY_KINDS.items()}


def entry_hash(kind: str, spec: dict[str, Any]) -> str:
    """What makes two shared versions the same: their kind and content (not where the files
    were copied from)."""
    body = {k: v for k, v in spec.items() if k != "source"}
    blob = json.dumps({"kind": kind, "spec": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class RegistryEntry:
    """One shared version, as stored in the registry."""

    registry: str
    kind: str
    name: str
    version: str
    spec: dict[str, Any]
    content_hash: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    shared_at: str = ""
    shared_by: str | None = None
    #: Blobs the spec refers to (files, folder manifests, build contexts).
    blobs: list[str] = field(default_factory=list)
    #: What a user should know when using it (e.g. "a CPU build of a GPU environment").
    notes: list[str] = field(default_factory=list)
    #: An environment's locks by Python series (pip ``--require-hashes`` text), when it had
    #: been built before it was shared: a workspace using it installs exactly these.
    locks: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return (f"{REGISTRY_URI_PREFIX}{self.registry}/{PLURAL[self.kind]}/{self.name}/"
                f"versions/{self.version}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegistryEntry:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _version_key(entry: RegistryEntry) -> tuple[str, list[Any]]:
    parts = [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_]", entry.version)]
    return entry.shared_at, parts


def pick_latest(entries: list[RegistryEntry]) -> RegistryEntry:
    """The version shared last (Azure's ``latest`` label)."""
    return max(entries, key=_version_key)


class FolderRegistry:
    """A registry users share into: a folder (or, later, an object store) of JSON and blobs."""

    read_only = False

    def __init__(self, name: str, storage: RegistryStorage) -> None:
        self.name = name
        self.storage = storage

    @property
    def location(self) -> str:
        return self.storage.location

    # --- the registry itself ---------------------------------------------------------------

    def header(self) -> dict[str, Any] | None:
        raw = self.storage.read(REGISTRY_FILE)
        if raw is None:
            return None
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise RegistryCorruptError(
                f"{self.location}/{REGISTRY_FILE} does not describe a registry.",
                hint="Give another folder, or fix the file.")
        return data

    def initialize(self, description: str | None = None) -> bool:
        """Make the folder a registry named :attr:`name`; ``False`` when it already was one.
        A folder holding a registry of another name is refused."""
        body = yaml.safe_dump({"format": FORMAT, "name": self.name, "description": description,
                               "created_at": _now()}, sort_keys=False)
        created = self.storage.create(REGISTRY_FILE, body.encode())
        header = self.header()
        if header is not None and header["name"] != self.name:
            raise RegistryConflictError(
                f"The folder {self.location!r} holds the registry {header['name']!r}, not "
                f"{self.name!r}.",
                hint=f"Use the name {header['name']!r}, or give another folder.")
        return created

    # --- reading ---------------------------------------------------------------------------

    def _read_entry(self, rel: str) -> RegistryEntry:
        raw = self.storage.read(rel)
        if raw is None:
            raise FileNotFoundError(rel)
        try:
            entry = RegistryEntry.from_dict(json.loads(raw))
            kind_dir, name, file = rel.split("/")
            if (PLURAL.get(entry.kind) != kind_dir or entry.name != name
                    or f"{entry.version}.json" != file or not isinstance(entry.spec, dict)
                    or not all(isinstance(b, str) and len(b) == 64 for b in entry.blobs)):
                raise ValueError("its fields do not match its place in the registry")
        except (ValueError, TypeError) as exc:
            raise RegistryCorruptError(f"The registry {self.name!r} has a broken entry {rel!r} "
                                       f"({exc}).", hint="Share that version again into a "
                                       "fresh registry, or remove the file.") from None
        entry.registry = self.name
        return entry

    def names(self, kind: str) -> list[str]:
        return self.storage.listdir(PLURAL[kind])

    def versions(self, kind: str, name: str) -> list[RegistryEntry]:
        folder = f"{PLURAL[kind]}/{validate_name(name)}"
        out = []
        for file in self.storage.listdir(folder):
            if file.endswith(".json"):
                try:
                    out.append(self._read_entry(f"{folder}/{file}"))
                except FileNotFoundError:
                    continue
        return out

    def entries(self, kind: str | None = None) -> list[RegistryEntry]:
        kinds = [kind] if kind else list(PLURAL)
        return [e for k in kinds for n in self.names(k) for e in self.versions(k, n)]

    def get(self, kind: str, name: str, version: str | None) -> RegistryEntry:
        """One version (``None``: the latest), or :class:`RegistryAssetNotFoundError`."""
        found = self.versions(kind, name)
        if version is not None:
            found = [e for e in found if e.version == version]
        if found:
            return pick_latest(found)
        have = sorted(e.version for e in self.versions(kind, name))
        if have:
            hint = f"Its versions: {', '.join(have)}; or use labels/latest."
        else:
            known = self.names(kind)
            hint = (f"Its {PLURAL[kind]}: {', '.join(known)}." if known else
                    f"It has no {PLURAL[kind]} yet: share one with `mlws {_cli(kind)} share "
                    f"NAME:VERSION --registry {self.name}`.")
        what = f"{name}:{version}" if version else name
        raise RegistryAssetNotFoundError(
            f"The registry {self.name!r} has no {kind} {what}.", hint=hint)

    def open_blob(self, sha256: str) -> Path:
        path = self.storage.blob_path(sha256)
        if not path.is_file():
            raise RegistryCorruptError(f"The blob {sha256[:12]} is missing from the registry "
                                       f"{self.name!r} ({self.location}).",
                                       hint="Share the asset into the registry again.")
        return path

    # --- writing ---------------------------------------------------------------------------

    def add(self, entry: RegistryEntry, blob_files: dict[str, Path]) -> tuple[RegistryEntry, bool]:
        """Store ``entry`` and its blobs; ``(stored entry, whether it is new)``. The same
        content already there is returned as it is (sharing is idempotent)."""
        rel = f"{PLURAL[entry.kind]}/{validate_name(entry.name)}/{entry.version}.json"
        try:
            existing: RegistryEntry | None = self._read_entry(rel)
        except FileNotFoundError:
            existing = None
        if existing is None:
            for sha, path in blob_files.items():
                self.storage.put_blob(sha, path)
            entry.shared_at = entry.shared_at or _now()
            data = json.dumps(entry.to_dict(), sort_keys=True, indent=1).encode()
            if self.storage.create(rel, data):
                return entry, True
            existing = self._read_entry(rel)  # another sharer was first
        if existing.content_hash != entry.content_hash:
            raise RegistryConflictError(
                f"The registry {self.name!r} already has {entry.kind} {entry.name}:"
                f"{entry.version} with other content.",
                hint="Share it under another version (--version), or pick the version it has "
                f"({existing.uri}).")
        return existing, False


def _cli(kind: str) -> str:
    return "env" if kind == "environment" else kind
