"""``ws.data``: files and folders copied in, or references to where data lives."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from jupyter_mlws.artifacts import PutSession, StoredArtifact
from jupyter_mlws.assets.data import Data, DataSpec
from jupyter_mlws.errors import SpecError, UnsafePathError, ValidationError
from jupyter_mlws.operations.base import AssetOperations, Prepared
from jupyter_mlws.operations.models import local_source

_DATASTORE_URI = re.compile(r"^(?:mlws|azureml)://datastores/([^/]+)/paths/(.*)$")


def parse_datastore_uri(uri: str) -> tuple[str, str] | None:
    """``mlws://datastores/<name>/paths/<path>`` -> (name, path); ``None`` for other URIs."""
    m = _DATASTORE_URI.match(uri)
    if not m:
        return None
    rel = PurePosixPath(m.group(2))
    if rel.is_absolute() or ".." in rel.parts:
        raise UnsafePathError(f"{uri!r} would leave the datastore.", hint="Remove the '..' parts.")
    return m.group(1), rel.as_posix()


class DataOperations(AssetOperations[DataSpec, Data]):
    kind = "data"
    spec_class = DataSpec

    def create(
        self,
        name: str | None = None,
        path: str | Path | None = None,
        *,
        type: str = "uri_folder",
        version: str | int | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        spec: DataSpec | None = None,
    ) -> Data:
        """Register data: a local path is copied in; ``file://``, ``http(s)://``, datastore and
        other fsspec URIs are kept as references."""
        if spec is None:
            from jupyter_mlws.assets.yaml_io import validate_spec

            fields: dict[str, Any] = {
                "name": name,
                "path": None if path is None else str(path),
                "type": type,
                "version": version,
                "description": description,
                "tags": tags or {},
            }
            spec = validate_spec(DataSpec, {k: v for k, v in fields.items() if v is not None})
        return self.register(spec)

    def _prepare(self, spec: DataSpec, session: PutSession) -> Prepared:
        data = spec.content()
        path = spec.path
        if path.startswith("azureml://datastores/"):
            path = "mlws://" + path[len("azureml://") :]
            data["path"] = path
        job_id = None
        if path.startswith(("mlws://jobs/", "azureml://jobs/")):
            job_id, out = self._ws.jobs.output_path(path)
            self._check_type(spec, out)
            stored = self._ws.artifacts.put_path(out, session=session)
            data.pop("path", None)
            data["source"] = path
            data["artifact"] = stored.to_dict()
            return Prepared(spec=data, job_id=job_id)
        ds = parse_datastore_uri(path)
        if ds is not None:
            self._ws.datastores.get(ds[0])  # the datastore must exist
            return Prepared(spec=data)
        if path.startswith("file://"):
            local = local_source(path, what="data")
            self._check_type(spec, local)
            return Prepared(spec=data)
        if "://" in path:
            return Prepared(spec=data)  # http(s):// and fsspec URLs: references
        src = local_source(path, what="data")
        self._check_type(spec, src)
        stored = self._ws.artifacts.put_path(src, session=session)
        data.pop("path", None)
        data["source"] = str(src.resolve())
        data["artifact"] = stored.to_dict()
        return Prepared(spec=data)

    @staticmethod
    def _check_type(spec: DataSpec, src: Path) -> None:
        if spec.type == "uri_file" and not src.is_file():
            raise SpecError(f"a uri_file must be a file; {str(src)!r} is a folder", field="path",
                            hint="Use type uri_folder for folders.")
        if spec.type in ("uri_folder", "mltable") and not src.is_dir():
            raise SpecError(f"a {spec.type} must be a folder; {str(src)!r} is a file",
                            field="path", hint="Use type uri_file for single files.")
        if spec.type == "mltable" and not (src / "MLTable").is_file():
            raise SpecError(f"an mltable folder must contain an MLTable file; {str(src)!r} has none",
                            field="path")

    def download(self, name: str, version: str | int | None = None, dest: str | Path = ".") -> Path:
        """Write a stored data version under ``dest`` (references are not downloaded)."""
        item = self.get(name, version)
        art = item.spec.get("artifact")
        if not art:
            raise ValidationError(
                f"data {item.ref} is a reference to {item.spec.get('path')}; nothing is stored.",
                hint="Read it from where it lives.",
            )
        stored = StoredArtifact.from_dict(art)
        return self._ws.artifacts.materialize(stored, Path(dest) / stored.name)
