"""Azure ``managedOnlineEndpoint`` / ``managedOnlineDeployment`` YAML as pydantic specs.

The shapes follow the Azure ML CLI v2 schemas, so an Azure file carries over. Fields that have
no meaning on this machine (``instance_type``, ``identity``, ``app_insights_enabled``...) are
accepted and reported as notes rather than refused.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jupyter_mlws.assets.base import validate_name
from jupyter_mlws.errors import ValidationError

#: Azure's endpoint names: a letter first, then letters, digits and '-', 3 to 32 characters.
_ENDPOINT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")

ENDPOINT_SCHEMAS = ("managedOnlineEndpoint", "kubernetesOnlineEndpoint")
DEPLOYMENT_SCHEMAS = ("managedOnlineDeployment", "kubernetesOnlineDeployment")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EndpointSpec(_Spec):
    """An online endpoint: a name, how callers authenticate, and how traffic is split."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    auth_mode: Literal["key", "aml_token", "aad_token"] = "key"
    compute: str | None = None
    identity: dict[str, Any] | None = None
    traffic: dict[str, int] = Field(default_factory=dict)
    mirror_traffic: dict[str, int] = Field(default_factory=dict)
    public_network_access: str | None = None
    kind: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_endpoint_name(v)

    def notes(self) -> list[str]:
        """What this machine accepts but does not do."""
        out = []
        if self.auth_mode != "key":
            out.append(f"auth_mode {self.auth_mode} is served as key authentication locally")
        if self.identity:
            out.append("identity is ignored locally")
        return out


class CodeConfiguration(_Spec):
    code: str
    scoring_script: str


class RequestSettings(_Spec):
    request_timeout_ms: int = Field(default=5000, ge=1, le=180_000)
    max_concurrent_requests_per_instance: int = Field(default=1, ge=1, le=1000)
    max_queue_wait_ms: int | None = None


class Probe(_Spec):
    initial_delay: int = Field(default=10, ge=0)
    period: int = Field(default=10, ge=1)
    timeout: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    failure_threshold: int = Field(default=30, ge=1)
    port: int | None = None
    path: str | None = None
    scheme: str | None = None
    method: str | None = None


class InlineModel(_Spec):
    path: str
    name: str | None = None
    version: str | int | None = None
    type: str = "custom_model"
    description: str | None = None


class DeploymentSpec(_Spec):
    """One deployment of an endpoint: a model, scoring code, an environment and replicas."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    endpoint_name: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    model: str | InlineModel | None = None
    code_configuration: CodeConfiguration | None = None
    environment: str | dict[str, Any] | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    instance_type: str | None = None
    instance_count: int = Field(default=1, ge=1, le=16)
    request_settings: RequestSettings = Field(default_factory=RequestSettings)
    liveness_probe: Probe = Field(default_factory=Probe)
    readiness_probe: Probe = Field(default_factory=lambda: Probe(failure_threshold=30))
    app_insights_enabled: bool | None = None
    scale_settings: dict[str, Any] | None = None
    egress_public_network_access: str | None = None
    data_collector: dict[str, Any] | None = None
    model_mount_path: str | None = None
    type: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_deployment_name(v)

    @field_validator("endpoint_name")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return check_endpoint_name(v)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items()}
        return v

    def notes(self, runtime: str = "process") -> list[str]:
        """What this machine accepts but does not do."""
        out = []
        if self.instance_type:
            where = ("containers of the environment's image" if runtime == "docker" else
                     "processes in the environment's venv")
            out.append(f"instance_type {self.instance_type} is noted; replicas run as "
                       f"{where} on this machine")
        for name in ("app_insights_enabled", "scale_settings", "data_collector",
                     "egress_public_network_access", "model_mount_path"):
            if getattr(self, name) is not None:
                out.append(f"{name} is ignored locally")
        return out


def check_endpoint_name(name: str) -> str:
    """An endpoint name as Azure allows it (it also names a folder and a host)."""
    if not isinstance(name, str) or not _ENDPOINT_RE.match(name):
        raise ValueError(
            f"the endpoint name {name!r} is not allowed: use 3 to 32 letters, digits and '-', "
            "starting with a letter and not ending with '-'")
    return name


def check_deployment_name(name: str) -> str:
    """A deployment name (Azure: like an endpoint name)."""
    if not isinstance(name, str) or not _ENDPOINT_RE.match(name):
        raise ValueError(
            f"the deployment name {name!r} is not allowed: use 3 to 32 letters, digits and '-', "
            "starting with a letter and not ending with '-'")
    validate_name(name, what="deployment name")
    return name


def parse_traffic(text: str | dict[str, Any]) -> dict[str, int]:
    """``"blue=90 green=10"`` (or ``blue=90,green=10``, or a mapping) -> ``{"blue": 90, ...}``."""
    if isinstance(text, dict):
        items = [(str(k), v) for k, v in text.items()]
    else:
        items = []
        for part in text.replace(",", " ").split():
            name, sep, value = part.partition("=")
            if not sep or not name:
                raise ValidationError(f"The traffic item {part!r} must look like NAME=PERCENT.",
                                      hint='Example: --traffic "blue=90 green=10".')
            items.append((name, value))
    out: dict[str, int] = {}
    for name, value in items:
        try:
            pct = int(value)
        except (TypeError, ValueError):
            raise ValidationError(f"The traffic of {name!r} must be a whole percentage, "
                                  f"not {value!r}.") from None
        if not 0 <= pct <= 100:
            raise ValidationError(f"The traffic of {name!r} must be between 0 and 100, "
                                  f"not {pct}.")
        out[name] = pct
    return out


def check_traffic(traffic: dict[str, int], deployments: set[str], endpoint: str) -> None:
    """Refuse a split naming an unknown deployment, or not summing to 100 (or 0)."""
    unknown = sorted(set(traffic) - deployments)
    if unknown:
        raise ValidationError(
            f"The traffic names {', '.join(unknown)}, which endpoint {endpoint!r} has no "
            "deployment of.",
            hint=f"Its deployments: {', '.join(sorted(deployments)) or '(none)'}. Nothing "
            "was changed.")
    total = sum(traffic.values())
    if traffic and total not in (0, 100):
        raise ValidationError(
            f"The traffic of endpoint {endpoint!r} sums to {total}%, not 100%.",
            hint="Give percentages that add up to 100. Nothing was changed.")


#: Azure's limit on the share of requests mirrored to one deployment.
MAX_MIRROR = 50


def check_mirror(mirror: dict[str, int], traffic: dict[str, int], deployments: set[str],
                 endpoint: str) -> None:
    """Refuse mirror traffic naming an unknown deployment, over 50%, or going to a deployment
    that takes live traffic (as Azure does)."""
    unknown = sorted(set(mirror) - deployments)
    if unknown:
        raise ValidationError(
            f"The mirror traffic names {', '.join(unknown)}, which endpoint {endpoint!r} has "
            "no deployment of.",
            hint=f"Its deployments: {', '.join(sorted(deployments)) or '(none)'}. Nothing "
            "was changed.")
    for name, share in mirror.items():
        if share > MAX_MIRROR:
            raise ValidationError(
                f"The mirror traffic of {name!r} is {share}%; at most {MAX_MIRROR}% of the "
                "requests can be mirrored.", hint="Nothing was changed.")
        if share > 0 and traffic.get(name, 0) > 0:
            raise ValidationError(
                f"The deployment {name!r} takes {traffic[name]}% of the live traffic, so it "
                "cannot also be sent mirrored traffic.",
                hint="Mirror to a deployment with 0% live traffic. Nothing was changed.")
