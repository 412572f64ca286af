"""Wire models of the REST API: what a request may carry and what a response holds.

They mirror ``openapi.yaml`` (the written contract). Queries ignore parameters they do not know
(Jupyter adds ``token`` and ``no_track_activity``); bodies refuse unknown fields.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from jupyter_mlws.errors import ValidationError
from jupyter_mlws.jobs.model import JobStatus

#: The path segment of each asset kind and the kind the facade knows it by.
KIND_SEGMENTS: dict[str, str] = {
    "environments": "environment",
    "models": "model",
    "data": "data",
    "components": "component",
    "datastores": "datastore",
    "computes": "compute",
}
#: The job states a ``status`` filter may name, spelled as the job model spells them.
JOB_STATUSES = tuple(s.value for s in JobStatus)
BuildStatus = Literal["not_built", "building", "succeeded", "failed", "cached"]
DEFAULT_LIMIT = 50
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
MAX_LIMIT = 500

M = TypeVar("M", bound=BaseModel)


# --- requests -------------------------------------------------------------------------------


class Query(BaseModel):
    """Query parameters; unknown ones (``token``, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")


class PageQuery(Query):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0)


class AssetListQuery(PageQuery):
    q: str | None = None
    tag: list[str] = Field(default_factory=list)
    include_archived: bool = False

    def tags(self) -> dict[str, str | None]:
        """``key`` or ``key=value`` per ``tag`` parameter; all must match."""
        out: dict[str, str | None] = {}
        for item in self.tag:
            key, sep, value = item.partition("=")
            if not key.strip():
                raise ValidationError(
                    f"The tag filter {item!r} has no key.", hint="Use tag=key or tag=key=value."
                )
            out[key.strip()] = value if sep else None
        return out


class VersionListQuery(PageQuery):
    include_archived: bool = False


class BuildQuery(Query):
    builder: Literal["docker", "venv"] = "docker"


class JobListQuery(PageQuery):
    status: str | None = None
    experiment: str | None = None
    parent: str | None = None
    created_by: str | None = Field(None, min_length=1, max_length=255)

    def statuses(self) -> list[str] | None:
        if not self.status:
            return None
        given = [s.strip() for s in self.status.split(",") if s.strip()]
        by_lower = {s.lower(): s for s in JOB_STATUSES}
        unknown = [s for s in given if s.lower() not in by_lower]
        if unknown:
            raise ValidationError(
                f"Unknown job status {', '.join(unknown)}.",
                hint=f"Use one or several (comma-separated) of: {', '.join(JOB_STATUSES)}.",
            )
        return [by_lower[s.lower()] for s in given]


class LogQuery(Query):
    offset: int = Field(0, ge=0)
    tail: int | None = Field(None, ge=1)


class NotebookQuery(Query):
    path: str = Field(min_length=1)


class Body(BaseModel):
    """A JSON request body; unknown fields are refused (they are most likely typos)."""

    model_config = ConfigDict(extra="forbid")


class AssetPatch(Body):
    description: str | None = None
    tags: dict[str, str] | None = None
    remove_tags: list[str] | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_values(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value


class NotebookSubmission(Body):
    """``POST /jobs``. Every path in it is confined to the server root (see ``confine.py``)."""

    notebook: str = Field(min_length=1, description="Path relative to the server root.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    literal_parameters: dict[str, str] = Field(
        default_factory=dict, description="Parameters written as Python literals, read by the "
        "parser the CLI and the magics use (wins over ``parameters``).")
    environment: str | None = None
    compute: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    literal_inputs: dict[str, str] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list)
    code: str | None = Field(None, min_length=1)
    display_name: str | None = None
    experiment: str | None = None
    timeout: float | None = Field(None, gt=0)

    @field_validator("outputs")
    @classmethod
    def _output_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not _OUTPUT_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an output name (letters, digits, '_', '-', "
                             "'.'; not a path)")
        return names


def parse_query(model: type[M], arguments: Mapping[str, list[bytes]]) -> M:
    """Validate tornado's ``request.query_arguments`` against ``model`` (400 when invalid)."""
    data: dict[str, Any] = {}
    for key, values in arguments.items():
        field = model.model_fields.get(key)
        if field is None:
            continue
        decoded = [v.decode("utf-8", errors="replace") for v in values]
        is_list = getattr(field.annotation, "__origin__", None) is list
        data[key] = decoded if is_list else decoded[-1]
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(
            "Invalid query: " + describe_errors(exc),
            hint="See the API contract (openapi.yaml) for the accepted values.",
        ) from None


def parse_body(model: type[M], raw: bytes) -> M:
    """Validate a JSON body against ``model`` (400 when it is not JSON or does not fit)."""
    try:
        return model.model_validate_json(raw or b"{}")
    except PydanticValidationError as exc:
        raise ValidationError("Invalid request body: " + describe_errors(exc)) from None


def describe_errors(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


# --- responses ------------------------------------------------------------------------------


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def utc(value: Any) -> datetime | None:
    """A timezone-aware datetime (SQLite gives naive UTC ones back)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value if isinstance(value, datetime) else None


class Build(BaseModel):
    status: BuildStatus
    env_hash: str
    builder: str
    environment: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    log: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @field_validator("started_at", "finished_at", mode="before")
    @classmethod
    def _aware(cls, value: Any) -> datetime | None:
        return utc(value)


class LogChunk(BaseModel):
    text: str
    offset: int
    done: bool


class NotebookParameter(BaseModel):
    name: str
    type: str | None = None
    default: str | None = None
    help: str | None = None

    @classmethod
    def from_papermill(cls, name: str, info: Mapping[str, Any]) -> NotebookParameter:
        """From ``papermill.inspect_notebook``: the annotation's type, else the type of a literal
        default (``2`` -> ``int``), so that a form can offer the right input."""
        typ = info.get("inferred_type_name")
        default = None if info.get("default") is None else str(info["default"])
        if typ in (None, "None") and default is not None:
            try:
                typ = type(ast.literal_eval(default)).__name__
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                typ = None
        return cls(
            name=name,
            type=None if typ in (None, "None", "NoneType") else str(typ),
            default=default,
            help=str(info.get("help") or "") or None,
        )
