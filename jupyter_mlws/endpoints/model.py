"""What the store keeps of an online endpoint and its deployments (entities, not rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

#: Deployment states, as Azure names them.
CREATING = "Creating"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
DELETING = "Deleting"


class OnlineEndpoint(BaseModel):
    """An endpoint's record. ``keys`` is the *encrypted* stored form; never show it."""

    name: str
    spec: dict[str, Any]
    port: int
    traffic: dict[str, int] = Field(default_factory=dict)
    keys: dict[str, Any] = Field(default_factory=dict, repr=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class OnlineDeployment(BaseModel):
    """A deployment's record: its spec as given and what it was resolved to (model, env)."""

    endpoint_name: str
    name: str
    spec: dict[str, Any]
    resolved: dict[str, Any] = Field(default_factory=dict)
    generation: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
