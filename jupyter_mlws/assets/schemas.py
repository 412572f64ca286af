"""``$schema`` lines: which kind a YAML file describes, and the JSON Schemas we publish.

Azure ML CLI v2 files point at ``https://azuremlschemas.azureedge.net/latest/<name>.schema.json``;
ours at ``mlws://schemas/<name>.schema.json`` (also written out by ``mlws schema``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from jupyter_mlws.assets.component import ComponentSpec
from jupyter_mlws.assets.compute import ComputeSpec
from jupyter_mlws.assets.data import DataSpec
from jupyter_mlws.assets.datastore import DatastoreSpec
from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.assets.job import CommandJobSpec, PipelineJobSpec
from jupyter_mlws.assets.model import ModelSpec
from jupyter_mlws.assets.yaml_io import LineIndex, short_text
from jupyter_mlws.errors import SpecError

#: schema file stem -> (asset kind, spec model)
SCHEMAS: dict[str, tuple[str, type[BaseModel]]] = {
    "environment": ("environment", EnvironmentSpec),
    "model": ("model", ModelSpec),
    "data": ("data", DataSpec),
    "commandComponent": ("component", ComponentSpec),
    "datastore": ("datastore", DatastoreSpec),
    "compute": ("compute", ComputeSpec),
    "commandJob": ("command_job", CommandJobSpec),
    "pipelineJob": ("pipeline_job", PipelineJobSpec),
}
# Azure names for datastores and computes of other types map onto ours.
_ALIASES = {
    "azureBlob": "datastore",
    "azureFile": "datastore",
    "azureDataLakeGen2": "datastore",
    "amlCompute": "compute",
    "computeInstance": "compute",
}


def kind_of(data: dict[str, Any], *, source: str | None = None,
            index: LineIndex | None = None) -> str | None:
    """The asset kind named by ``$schema``; ``None`` when there is no ``$schema``."""
    url = data.get("$schema")
    if url is None:
        return None
    stem = str(url).rstrip("/").rsplit("/", 1)[-1]
    stem = stem.removesuffix(".json").removesuffix(".schema")
    stem = _ALIASES.get(stem, stem)
    if stem == "pipelineComponent":  # a component; ws.components says how it is used
        return "component"
    if stem not in SCHEMAS:
        raise SpecError(
            f"unknown $schema {short_text(repr(url), 100)}",
            file=source,
            line=(index or {}).get(("$schema",)),
            hint="Known schemas: " + ", ".join(f"{s}.schema.json" for s in SCHEMAS) + ".",
        )
    return SCHEMAS[stem][0]


def json_schema(stem: str) -> dict[str, Any]:
    kind, model = SCHEMAS[stem]
    schema = model.model_json_schema(by_alias=True)
    schema["$id"] = f"mlws://schemas/{stem}.schema.json"
    schema.setdefault("title", f"jupyter_mlws {kind}")
    return schema


def write_schemas(dest: Path) -> list[Path]:
    """Write every JSON Schema into ``dest``; return the files written."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for stem in SCHEMAS:
        p = dest / f"{stem}.schema.json"
        p.write_text(json.dumps(json_schema(stem), indent=2, sort_keys=True) + "\n")
        out.append(p)
    return out
