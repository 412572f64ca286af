"""``ws.computes``: compute definitions (name, kind, settings). ``local`` always exists."""

from __future__ import annotations

from typing import Any

from jupyter_mlws.assets.compute import Compute, ComputeSpec
from jupyter_mlws.operations.base import AssetOperations

DEFAULT_COMPUTE = "local"


class ComputeOperations(AssetOperations[ComputeSpec, Compute]):
    kind = "compute"
    spec_class = ComputeSpec

    def create(
        self,
        name: str | None = None,
        *,
        type: str = "local",
        max_concurrent_jobs: int = 2,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        spec: ComputeSpec | None = None,
        **settings: Any,
    ) -> Compute:
        if spec is None:
            from jupyter_mlws.assets.yaml_io import validate_spec

            known = set(ComputeSpec.model_fields)
            fields: dict[str, Any] = {
                "name": name, "type": type, "max_concurrent_jobs": max_concurrent_jobs,
                "description": description, "tags": tags or {},
                **{k: v for k, v in settings.items() if k in known},
            }
            extra = {k: v for k, v in settings.items() if k not in known}
            if extra:
                fields["settings"] = extra
            spec = validate_spec(ComputeSpec, {k: v for k, v in fields.items() if v is not None})
        return self.register(spec)
