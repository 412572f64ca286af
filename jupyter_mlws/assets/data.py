"""Data assets: files and folders copied into the workspace, or references to where they live."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator

from jupyter_mlws.assets.base import Asset, AssetSpec, validate_path_text

DataType = Literal["uri_file", "uri_folder", "mltable"]
DATA_TYPES: tuple[str, ...] = ("uri_file", "uri_folder", "mltable")
#: Input types a job spec may describe without registering anything.
PRIMITIVE_TYPES: tuple[str, ...] = ("string", "boolean", "number", "integer")


class DataSpec(AssetSpec):
    ignored_fields: ClassVar[frozenset[str]] = frozenset({"datastore", "auto_delete_setting"})

    type: DataType = "uri_folder"
    path: str
    properties: dict[str, str] = {}

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return validate_path_text(value)


class Data(Asset):
    @property
    def type(self) -> str:
        return str(self.spec.get("type", "uri_folder"))

    @property
    def uri(self) -> str:
        """Where the data is: a reference URI, or the stored copy."""
        if self.spec.get("artifact"):
            return f"mlws://data/{self.name}/versions/{self.version}"
        return str(self.spec["path"])

    def extra_fields(self) -> dict[str, Any]:
        art = self.spec.get("artifact") or {}
        return {"type": self.type, "uri": self.uri, "size": art.get("size"),
                "sha256": art.get("sha256"), "stored": bool(art)}
