"""Binding a job's inputs and outputs: literal values, registered assets, job outputs,
datastore paths and files become values for the command and paths for the job."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from jupyter_mlws.assets.base import (
    is_registry_uri,
    looks_like_ref,
    parse_ref,
    parse_registry_ref,
)
from jupyter_mlws.errors import (
    AssetNotFoundError,
    MlwsError,
    NotFoundError,
    UnsafePathError,
    ValidationError,
)
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.queries import parse_job_uri

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace

PRIMITIVE_INPUT_TYPES = ("string", "integer", "number", "boolean")


@dataclass
class BoundInputs:
    """Input name -> value for the command; lineage rows; host paths the job reads."""

    values: dict[str, Any] = field(default_factory=dict)
    lineage: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)


def _names_a_file(text: str) -> bool:
    """Whether ``text`` is the path of an existing file or folder; ``False`` for text no path
    can be (too long, a NUL byte), which is then a plain value."""
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):
        return False


class InputBinder:
    """Binds the inputs of one submission (``output_path`` resolves job output URIs)."""

    def __init__(self, ws: Workspace, output_path: Callable[[str], tuple[str, Path]]) -> None:
        self._ws = ws
        self._output_path = output_path

    def bind(self, inputs: Mapping[str, Any] | None, paths: JobPaths) -> BoundInputs:
        bound = BoundInputs()
        for name, given in (inputs or {}).items():
            spec = given if isinstance(given, Mapping) else {"value": given}
            typ = spec.get("type")
            raw = spec.get("path", spec.get("value"))
            if raw is None:
                bound.values[name] = spec.get("default")
                continue
            text = str(raw)
            untyped_literal = (typ is None and "path" not in spec and isinstance(raw, str)
                               and not looks_like_ref(text) and "://" not in text
                               and not _names_a_file(text))
            if (isinstance(raw, (bool, int, float)) or untyped_literal
                    or typ in PRIMITIVE_INPUT_TYPES):
                bound.values[name] = raw
                bound.lineage.append({"name": name, "type": typ or primitive_type(raw),
                                      "value": json.dumps(raw)})
                continue
            value, row, mount = self._bind_location(name, text, typ, paths)
            bound.values[name] = value
            bound.lineage.append(row)
            if mount:
                bound.mounts.append(value)
        return bound

    def _bind_location(self, name: str, text: str, typ: str | None, paths: JobPaths
                       ) -> tuple[str, dict[str, Any], bool]:
        """(value, lineage row, whether the value is a host path the job reads)."""
        if looks_like_ref(text) or is_registry_uri(text):
            value, row = self._bind_asset(name, text, typ, paths)
            return value, row, True
        if parse_job_uri(text) is not None:
            _, out_path = self._output_path(text)
            return str(out_path), {"name": name, "type": typ or "uri_folder", "uri": text}, True
        if text.startswith(("http://", "https://")):
            from jupyter_mlws.jobs.azure_compat import download_input

            local_copy = download_input(self._ws, name, text, typ)
            return str(local_copy), {"name": name, "type": typ or "uri_file", "uri": text}, True
        from jupyter_mlws.jobs.azure_compat import refuse_cloud_storage

        refuse_cloud_storage(name, text)
        remote = self._remote(text)
        if remote is not None:
            local = fetch_remote(remote[0], remote[1], paths.inputs / name, typ,
                                 what=f"The input {name!r}", uri=text)
        else:
            local = self._local(text)
            if not _names_a_file(str(local)):
                raise NotFoundError(f"The input {name!r} names {text[:300]!r}, which does not "
                                    "exist.", hint="Give an existing file or folder.")
        local = local.resolve()
        row = {"name": name, "type": typ or ("uri_file" if local.is_file() else "uri_folder"),
               "uri": text}
        return str(local), row, True

    def _remote(self, uri: str) -> tuple[Any, str] | None:
        """``(fsspec filesystem, path)`` when ``uri`` is on an fsspec datastore or is an fsspec
        URL; ``None`` for local paths (and local datastores)."""
        from jupyter_mlws.operations.data import parse_datastore_uri

        ds = parse_datastore_uri(uri)
        if ds is not None:
            if self._ws.datastores.get(ds[0]).type == "local":
                return None
            fs, root = self._ws.datastores.fs(ds[0])
            return fs, f"{str(root).rstrip('/')}/{ds[1]}" if ds[1] else str(root)
        if "://" not in uri or uri.startswith(("file://", "mlws://", "azureml://")):
            return None
        import fsspec

        try:
            fs, path = fsspec.core.url_to_fs(uri)
        except (ValueError, ImportError) as exc:
            raise ValidationError(f"{uri!r} cannot be read: {exc}",
                                  hint="Install the fsspec backend for its scheme, or register "
                                  "a datastore for it.") from None
        return fs, path

    def _local(self, uri: str) -> Path:
        from jupyter_mlws.operations.data import parse_datastore_uri

        ds = parse_datastore_uri(uri)
        if ds is not None:
            return Path(self._ws.datastores.root(ds[0])) / ds[1]
        return Path(uri[len("file://"):] if uri.startswith("file://") else uri)

    def _bind_asset(self, name: str, ref: str, typ: str | None, paths: JobPaths
                    ) -> tuple[str, dict[str, Any]]:
        registry = parse_registry_ref(ref, kind="model") if is_registry_uri(ref) else None
        parsed = parse_ref(ref) if registry is None else None
        kind = "model" if registry or typ in ("custom_model", "mlflow_model",
                                              "triton_model") else "data"
        ops: Any = self._ws.models if kind == "model" else self._ws.data
        try:
            asset = ops.get(ref) if parsed is None else ops.get(parsed.name, parsed.version)
        except AssetNotFoundError:
            other: Any = self._ws.models if kind == "data" else self._ws.data
            try:
                asset = other.get(str(parsed))
                kind = asset.kind
            except AssetNotFoundError:
                known = ", ".join(self._ws.data.names() + self._ws.models.names())
                raise AssetNotFoundError(
                    f"The input {name!r} names {ref!r}, which is not a registered data or model.",
                    hint=f"Known data and models: {known or 'none'}.") from None
        row = {"name": name, "type": typ or asset.spec.get("type", "uri_folder"),
               "asset_kind": kind, "asset_name": asset.name, "asset_version": asset.version}
        art = asset.spec.get("artifact")
        if art:
            from jupyter_mlws.artifacts import StoredArtifact

            stored = StoredArtifact.from_dict(art)
            dest = paths.inputs / name
            target = dest / stored.name if stored.kind == "file" else dest
            self._ws.artifacts.materialize(stored, target)
            return str(target), row
        uri = str(asset.spec.get("path"))
        row["uri"] = uri
        if uri.startswith(("http://", "https://")):
            from jupyter_mlws.jobs.azure_compat import download_input

            return str(download_input(self._ws, name, uri, row["type"])), row
        remote = self._remote(uri)
        if remote is not None:
            local = fetch_remote(remote[0], remote[1], paths.inputs / name, row["type"],
                                 what=f"The input {name!r} ({asset.ref})", uri=uri)
            return str(local.resolve()), row
        return str(self._local(uri)), row


def fetch_remote(fs: Any, rpath: str, dest: Path, typ: str | None, *, what: str,
                 uri: str) -> Path:
    """Download a file or folder from an fsspec filesystem into ``dest``; the local path.

    A folder becomes ``dest`` itself; a file becomes ``dest/<its name>``. Names that would
    leave ``dest`` are refused.
    """
    try:
        if not fs.exists(rpath):
            raise NotFoundError(f"{what} names {uri!r}, which does not exist.")
        if fs.isdir(rpath):
            if typ == "uri_file":
                raise ValidationError(f"{what} is a uri_file, but {uri!r} is a folder.",
                                      hint="Declare it as uri_folder.")
            base = rpath.rstrip("/")
            dest.mkdir(parents=True, exist_ok=True)
            for found in sorted(fs.find(rpath)):
                rel = PurePosixPath(str(found)[len(base):].lstrip("/"))
                if not str(found).startswith(base + "/") or ".." in rel.parts:
                    raise UnsafePathError(f"{what}: {found!r} in {uri!r} would leave the "
                                          "job's inputs folder.")
                target = dest.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(found, str(target))
            return dest
        if typ in ("uri_folder", "mltable"):
            raise ValidationError(f"{what} is a {typ}, but {uri!r} is a file.",
                                  hint="Declare it as uri_file.")
        name = PurePosixPath(rpath.rstrip("/")).name
        if not name or name in (".", ".."):
            raise UnsafePathError(f"{what}: {uri!r} has no file name.")
        dest.mkdir(parents=True, exist_ok=True)
        fs.get_file(rpath, str(dest / name))
        return dest / name
    except MlwsError:
        raise
    except OSError as exc:
        raise MlwsError(f"{what} could not be downloaded from {uri!r}: {exc}",
                        hint="Check the datastore's URL and credentials.") from None


def bind_outputs(outputs: Mapping[str, Any] | None, paths: JobPaths,
                 ws: Workspace | None = None) -> dict[str, str]:
    """Make each output's folder (a ``uri_file`` output is a file the job writes: only its
    parent is made); output name -> type. An empty declaration is a ``uri_folder``. With
    ``ws``, outputs whose ``path`` names a datastore are planned to be written there (see
    :mod:`jupyter_mlws.jobs.datastore_outputs`)."""
    if ws is not None:
        from jupyter_mlws.jobs.datastore_outputs import plan_datastore_outputs

        plan_datastore_outputs(ws, outputs, paths)
    out: dict[str, str] = {}
    for name, spec in (outputs or {}).items():
        typ = (spec.get("type") if isinstance(spec, Mapping) else None) or "uri_folder"
        if typ == "uri_file":
            paths.outputs.mkdir(parents=True, exist_ok=True)
        else:
            (paths.outputs / name).mkdir(parents=True, exist_ok=True)
        out[name] = typ
    return out


def input_type(value: Any) -> str:
    """The declared type of a command input from the value given."""
    if isinstance(value, Mapping) and value.get("type"):
        return str(value["type"])
    if isinstance(value, str) and (looks_like_ref(value) or "/" in value or "://" in value):
        return "uri_folder"
    return primitive_type(value)


def primitive_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def is_optional(value: Any) -> bool:
    return bool(isinstance(value, Mapping) and value.get("optional"))


def resolve_input_path(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """A relative ``path`` of a YAML input, made absolute from the YAML file's folder."""
    path = spec.get("path")
    if isinstance(path, str) and "://" not in path and not looks_like_ref(path):
        p = Path(path).expanduser()
        spec["path"] = str(p if p.is_absolute() else (base / p).resolve())
    return spec
