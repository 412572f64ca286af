"""Models: a file or folder stored in the artifact store, typed as Azure ML types them."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from jupyter_mlws.assets.base import Asset, AssetSpec, validate_path_text

ModelType = Literal["custom_model", "mlflow_model", "triton_model"]
MODEL_TYPES: tuple[str, ...] = ("custom_model", "mlflow_model", "triton_model")


class ModelSpec(AssetSpec):
    """A model to register: ``path`` is a local file/folder or a job output URI."""

    ignored_fields: ClassVar[frozenset[str]] = frozenset({"stage", "datastore", "job_name"})

    type: ModelType = "custom_model"
    path: str
    properties: dict[str, str] = Field(default_factory=dict)
    flavors: dict[str, Any] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return validate_path_text(value)


class Model(Asset):
    """A registered model version; ``spec['artifact']`` describes the stored bytes."""

    @property
    def type(self) -> str:
        return str(self.spec.get("type", "custom_model"))

    @property
    def artifact(self) -> dict[str, Any]:
        return dict(self.spec.get("artifact") or {})

    @property
    def sha256(self) -> str | None:
        return self.artifact.get("sha256")

    @property
    def size(self) -> int | None:
        return self.artifact.get("size")

    def extra_fields(self) -> dict[str, Any]:
        return {"type": self.type, "sha256": self.sha256, "size": self.size}
