"""Job specs in the Azure ML CLI v2 shapes (``commandJob`` and ``pipelineJob``).

These describe what to run; submitting and running them is the jobs layer's work.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from jupyter_mlws.assets.base import (
    SpecModel,
    validate_description,
    validate_path_text,
    validate_tags,
)
from jupyter_mlws.assets.component import check_command
from jupyter_mlws.assets.environment import EnvironmentSpec, env_var_mapping, inline_environment


class JobInput(SpecModel):
    type: str | None = None
    path: str | None = None
    value: Any = None
    optional: bool = False
    default: Any = None
    mode: str | None = Field(default=None, exclude=True)

    _path = field_validator("path")(classmethod(lambda cls, v: _path_or_none(v)))


class JobOutput(SpecModel):
    type: str = "uri_folder"
    path: str | None = None
    mode: str | None = Field(default=None, exclude=True)

    _path = field_validator("path")(classmethod(lambda cls, v: _path_or_none(v)))


def _path_or_none(value: str | None) -> str | None:
    return None if value is None else validate_path_text(value)


class _JobMeta(SpecModel):
    """What every job kind shares: its name, description and tags, bounded like an asset's."""

    schema_: str | None = Field(default=None, alias="$schema", exclude=True)
    name: str | None = None
    display_name: str | None = None
    experiment_name: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    #: Azure ML job properties: kept with the spec, with no meaning here.
    properties: dict[str, Any] = Field(default_factory=dict)
    compute: str | None = None

    _tags = field_validator("tags", mode="before")(classmethod(lambda cls, v: validate_tags(v)))
    _description = field_validator("description", mode="before")(
        classmethod(lambda cls, v: validate_description(v)))

    @field_validator("name", "display_name", "experiment_name", "compute")
    @classmethod
    def _short_text(cls, value: str | None) -> str | None:
        if value is not None and len(value) > 255:
            raise ValueError("at most 255 characters")
        return value


def _coerce_inputs(value: object) -> object:
    """Literal values in ``inputs:`` are primitives; mappings are typed inputs."""
    if not isinstance(value, dict):
        return value if value is not None else {}
    return {k: v if isinstance(v, dict) else {"value": v} for k, v in value.items()}


def _coerce_outputs(value: object) -> object:
    """An output declared with nothing (``model:``) is a ``uri_folder``, as in Azure ML."""
    if isinstance(value, dict):
        return {k: {} if v is None else v for k, v in value.items()}
    return value if value is not None else {}


_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def iso_duration_seconds(value: Any) -> Any:
    """``PT1H30M``-style ISO 8601 durations (Azure ML's REST form of a timeout) -> seconds;
    anything else is returned as it is, for the field to check."""
    if isinstance(value, str):
        m = _ISO_DURATION.match(value.strip().upper())
        if m and value.strip().upper() not in ("P", "PT"):
            days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
            return days * 86400 + hours * 3600 + minutes * 60 + seconds
    return value


class JobLimits(SpecModel):
    """``limits:`` of a command job: ``timeout`` in seconds (or an ISO 8601 duration such as
    ``PT2H``) fails the job when reached."""

    timeout: float | None = Field(default=None, gt=0)

    _duration = field_validator("timeout", mode="before")(
        classmethod(lambda cls, v: iso_duration_seconds(v)))


class CommandJobSpec(_JobMeta):
    #: Accepted and dropped with a warning: they mean nothing on a local compute.
    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {"resources", "distribution", "identity", "services", "queue_settings"}
    )

    type: Literal["command"] = "command"
    command: str
    code: str | None = None
    #: None: the current interpreter on local compute, the curated minimal image on Docker.
    environment: str | EnvironmentSpec | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    inputs: dict[str, JobInput] = Field(default_factory=dict)
    outputs: dict[str, JobOutput] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    limits: JobLimits | None = None
    #: Folders or files copied into the root of the code snapshot.
    additional_includes: list[str] = Field(default_factory=list)

    _coerce = field_validator("inputs", mode="before")(classmethod(lambda cls, v: _coerce_inputs(v)))
    _coerce_out = field_validator("outputs", mode="before")(
        classmethod(lambda cls, v: _coerce_outputs(v)))
    _includes = field_validator("additional_includes", mode="before")(
        classmethod(lambda cls, v: [] if v is None else v))

    @property
    def job_timeout(self) -> float | None:
        """``timeout`` or ``limits.timeout`` (the Azure ML spelling)."""
        return self.timeout or (self.limits.timeout if self.limits else None)

    _inline_env = field_validator("environment", mode="before")(
        classmethod(lambda cls, v: inline_environment(v)))
    _env_vars = field_validator("environment_variables", mode="before")(
        classmethod(lambda cls, v: env_var_mapping(v)))
    _code = field_validator("code")(classmethod(lambda cls, v: _path_or_none(v)))

    @field_validator("compute", mode="before")
    @classmethod
    def _compute(cls, value: object) -> object:
        if isinstance(value, str):
            for prefix in ("azureml:", "mlws:"):
                if value.startswith(prefix):
                    return value[len(prefix):]
        return value

    @model_validator(mode="after")
    def _command(self) -> CommandJobSpec:
        from jupyter_mlws.assets.component import InputSpec, OutputSpec

        ins = {k: InputSpec(type=v.type or "string", optional=v.optional) for k, v in
               self.inputs.items()}
        outs = {k: OutputSpec(type=v.type) for k, v in self.outputs.items()}
        check_command(self.command, ins, outs)
        return self


class PipelineStep(SpecModel):
    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {"resources", "distribution", "identity", "services", "queue_settings"})

    type: Literal["command", "notebook", "pipeline", "sweep"] = "command"
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    #: A sweep step's limits are a sweep's (checked when the sweep is submitted).
    limits: JobLimits | dict[str, Any] | None = None
    #: The fields of a ``type: sweep`` step (see :mod:`jupyter_mlws.sweeps.spec`).
    trial: str | dict[str, Any] | None = None
    search_space: dict[str, Any] | None = None
    sampling_algorithm: str | dict[str, Any] | None = None
    objective: dict[str, Any] | None = None
    early_termination: dict[str, Any] | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    component: str | dict[str, Any] | None = None
    command: str | None = None
    notebook: str | None = None
    code: str | None = None
    environment: str | dict[str, Any] | None = None
    compute: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)

    _coerce_out = field_validator("outputs", mode="before")(
        classmethod(lambda cls, v: _coerce_outputs(v)))
    _env_vars = field_validator("environment_variables", mode="before")(
        classmethod(lambda cls, v: env_var_mapping(v)))
    _paths = field_validator("code", "notebook")(classmethod(lambda cls, v: _path_or_none(v)))

    @model_validator(mode="after")
    def _what(self) -> PipelineStep:
        if self.type == "sweep":
            if not (self.trial and self.search_space and self.objective):
                raise ValueError("a sweep step needs trial, search_space and objective")
            return self
        if isinstance(self.limits, dict):
            raise ValueError(f"limits of a {self.type} step take only timeout")
        sweep_only = [k for k in ("trial", "search_space", "sampling_algorithm", "objective",
                                  "early_termination") if getattr(self, k) is not None]
        if sweep_only:
            raise ValueError(f"{sweep_only[0]} belongs to a sweep step (type: sweep)")
        given = [x for x in (self.component, self.command, self.notebook) if x]
        if len(given) != 1:
            raise ValueError("a pipeline step needs exactly one of component, command or notebook")
        return self


class PipelineJobSpec(_JobMeta):
    type: Literal["pipeline"] = "pipeline"
    settings: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    jobs: dict[str, PipelineStep]

    @field_validator("jobs")
    @classmethod
    def _non_empty(cls, value: dict[str, PipelineStep]) -> dict[str, PipelineStep]:
        if not value:
            raise ValueError("a pipeline needs at least one step under 'jobs'")
        return value
