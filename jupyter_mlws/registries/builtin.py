"""The built-in registry ``azureml``: local equivalents of Azure's curated environments.

Its entries are YAML files shipped in ``registries/azureml/``: each names an Azure curated
environment (and the other names Azure users write for it, ``AzureML-...`` included), what it
holds on Azure, how the local build differs, and the environment definition built here (from the
offline Debian base). A GPU-only environment either resolves to a CPU build, with a note saying
so, or is refused naming what is missing.

Azure rebuilds its curated images under new version numbers; here each has one local build, so
any version number asked for resolves to it, with a note.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from jupyter_mlws.errors import (
    GpuEnvironmentError,
    RegistryAssetNotFoundError,
    RegistryReadOnlyError,
)
from jupyter_mlws.registries.catalog import RegistryEntry, entry_hash

BUILTIN_NAME = "azureml"
HERE = Path(__file__).parent / "azureml"


@functools.lru_cache(maxsize=1)
def _catalog() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(p.read_text(encoding="utf-8"))
                 for p in sorted(HERE.glob("*.yaml")))


def catalog_table() -> list[dict[str, Any]]:
    """One row per curated environment: Azure name(s), contents here, and how it differs."""
    return [{"name": d["name"], "aliases": list(d.get("aliases") or []),
             "description": d.get("description"), "azure": d.get("azure"),
             "differs": d.get("differs"), "gpu": d.get("gpu"),
             "refused": bool(d.get("refused"))} for d in _catalog()]


class BuiltinRegistry:
    """The read-only ``azureml`` registry (environments only)."""

    read_only = True
    name = BUILTIN_NAME
    location = "built in (jupyter_mlws/registries/azureml)"

    def _find(self, name: str) -> dict[str, Any] | None:
        wanted = name.lower()
        for data in _catalog():
            names = [data["name"], *(data.get("aliases") or [])]
            if any(n.lower() == wanted for n in names):
                return data
        return None

    def _entry(self, data: dict[str, Any], asked: str, version: str | None) -> RegistryEntry:
        spec = dict(data["environment"])
        notes = []
        if data.get("cpu_build"):
            notes.append(f"warning: {data['cpu_build']}")
        if version is not None and version != str(data["version"]):
            notes.append(f"note: Azure's version {version} of {asked} is an image Azure "
                         f"rebuilds; here every version is the local build {data['version']} "
                         f"of {data['name']}")
        return RegistryEntry(
            registry=BUILTIN_NAME, kind="environment", name=data["name"],
            version=str(data["version"]), spec=spec, content_hash=entry_hash("environment", spec),
            description=data.get("description"),
            tags={"curated": "true", "azure_name": asked}, notes=notes)

    def names(self, kind: str) -> list[str]:
        return [d["name"] for d in _catalog()] if kind == "environment" else []

    def versions(self, kind: str, name: str) -> list[RegistryEntry]:
        data = self._find(name) if kind == "environment" else None
        if data is None or data.get("refused"):
            return []
        return [self._entry(data, name, None)]

    def entries(self, kind: str | None = None) -> list[RegistryEntry]:
        if kind not in (None, "environment"):
            return []
        return [self._entry(d, d["name"], None) for d in _catalog() if not d.get("refused")]

    def get(self, kind: str, name: str, version: str | None) -> RegistryEntry:
        data = self._find(name) if kind == "environment" else None
        if data is None:
            known = ", ".join(d["name"] for d in _catalog())
            raise RegistryAssetNotFoundError(
                f"The built-in registry 'azureml' has no {kind} {name!r}: it holds local "
                "equivalents of Azure's most used curated environments only.",
                hint=f"Known: {known} (and their AzureML- names; see `mlws registry show "
                "azureml`). Or define the environment yourself: `mlws env create -f env.yml`.")
        if data.get("refused"):
            raise GpuEnvironmentError(
                f"{name} is a GPU-only Azure environment ({data.get('gpu')}) with no CPU "
                f"equivalent here: it {data['refused']}.",
                hint="Run it in Azure ML, or define a CPU environment of your own with the "
                "packages the job needs (`mlws env create -f env.yml`).")
        return self._entry(data, name, version)

    def open_blob(self, sha256: str) -> Path:
        raise RegistryAssetNotFoundError("The built-in registry holds no files.")

    def add(self, entry: RegistryEntry, blob_files: dict[str, Path]) -> tuple[RegistryEntry, bool]:
        raise RegistryReadOnlyError(
            "The built-in registry 'azureml' is read-only: it ships with the package.",
            hint="Create a registry of your own (`mlws registry create NAME --path DIR`) and "
            "share into it.")
