"""Compute definitions: a name, a kind of target, and its settings."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from jupyter_mlws.assets.base import Asset, AssetSpec

#: Compute kinds the package knows; plugins add theirs under the ``jupyter_mlws.compute`` group.
BUILTIN_COMPUTE_KINDS: tuple[str, ...] = ("local", "docker", "ray")


def known_compute_kinds() -> list[str]:
    from importlib.metadata import entry_points

    extra = [ep.name for ep in entry_points(group="jupyter_mlws.compute")]
    return sorted(set(BUILTIN_COMPUTE_KINDS) | set(extra))


class ComputeSpec(AssetSpec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {"size", "min_instances", "max_instances", "idle_time_before_scale_down", "location",
         "tier", "identity", "ssh_public_access_enabled"}
    )

    type: str = "local"
    max_concurrent_jobs: int = Field(default=2, ge=1, le=1024)
    cpus: float | None = Field(default=None, gt=0)
    memory: str | None = None
    gpus: int | str | None = None
    address: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _kind(cls, value: str) -> str:
        known = known_compute_kinds()
        if value not in known:
            raise ValueError(f"unknown compute type {value!r}; known types: {', '.join(known)}")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.fullmatch(r"\d+(\.\d+)?[kKmMgGtT]?[iI]?[bB]?", value):
            raise ValueError("memory must look like 512m, 4g or 2Gi")
        return value


class Compute(Asset):
    @property
    def type(self) -> str:
        return str(self.spec.get("type", "local"))

    def extra_fields(self) -> dict[str, Any]:
        return {"type": self.type, "max_concurrent_jobs": self.spec.get("max_concurrent_jobs")}
