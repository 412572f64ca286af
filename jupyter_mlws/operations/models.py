"""``ws.models``: register files and folders as typed, versioned models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_mlws.artifacts import PutSession, StoredArtifact
from jupyter_mlws.assets.model import Model, ModelSpec
from jupyter_mlws.errors import NotFoundError, SpecError, ValidationError
from jupyter_mlws.operations.base import AssetOperations, Prepared


def local_source(path: str, *, what: str) -> Path:
    """A local path given in a spec, checked to exist."""
    text = path[len("file://") :] if path.startswith("file://") else path
    p = Path(text).expanduser()
    if not p.exists():
        raise NotFoundError(
            f"The {what} path {str(p)!r} does not exist.",
            hint="Check the path; relative paths in YAML resolve against the YAML file's folder.",
        )
    return p


class ModelOperations(AssetOperations[ModelSpec, Model]):
    kind = "model"
    spec_class = ModelSpec

    def create(
        self,
        name: str | None = None,
        path: str | Path | None = None,
        *,
        type: str = "custom_model",
        version: str | int | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        spec: ModelSpec | None = None,
    ) -> Model:
        """Register a model from a local file or folder (copied into the workspace)."""
        if spec is None:
            spec = self._validated(
                {
                    "name": name,
                    "path": None if path is None else str(path),
                    "type": type,
                    "version": version,
                    "description": description,
                    "tags": tags or {},
                    "properties": properties or {},
                }
            )
        return self.register(spec)

    def _validated(self, data: dict[str, Any]) -> ModelSpec:
        from jupyter_mlws.assets.yaml_io import validate_spec

        return validate_spec(ModelSpec, {k: v for k, v in data.items() if v is not None})

    def _prepare(self, spec: ModelSpec, session: PutSession) -> Prepared:
        job_id = None
        path = spec.path
        if path.startswith(("mlws://jobs/", "azureml://jobs/")):
            job_id, src_path = self._ws.jobs.output_path(path)
            path = str(src_path)
        if "://" in path and not spec.path.startswith("file://"):
            raise ValidationError(
                f"A model is registered from local files or job outputs; {path!r} is remote.",
                hint="Download it first, or register it as a data asset reference.",
            )
        src = local_source(path, what="model")
        self._check_type(spec, src)
        stored = self._ws.artifacts.put_path(src, session=session)
        data = spec.content()
        data.pop("path", None)
        data["source"] = spec.path if job_id else str(src.resolve())
        data["artifact"] = stored.to_dict()
        return Prepared(spec=data, job_id=job_id)

    @staticmethod
    def _check_type(spec: ModelSpec, src: Path) -> None:
        if spec.type == "mlflow_model":
            if not src.is_dir() or not (src / "MLmodel").is_file():
                raise SpecError(
                    f"an mlflow_model must be a folder with an MLmodel file; {str(src)!r} has none",
                    field="path",
                    hint="Point at the folder saved by mlflow.<flavor>.save_model, or use "
                    "type custom_model.",
                )
        elif spec.type == "triton_model" and not src.is_dir():
            raise SpecError(
                "a triton_model must be a model repository folder", field="path"
            )

    def download(self, name: str, version: str | int | None = None, dest: str | Path = ".") -> Path:
        """Write a model version's files under ``dest``; return the path written."""
        model = self.get(name, version)
        art = StoredArtifact.from_dict(model.artifact)
        dest = Path(dest)
        target = dest / art.name
        return self._ws.artifacts.materialize(art, target)
