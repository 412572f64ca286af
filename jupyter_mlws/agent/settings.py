"""``job_agent`` in ``workspace.yaml``: the job agent's settings (pydantic, so kept apart from
the standard-library modules the ``mlws`` fast path imports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jupyter_mlws.agent import switched_off


class JobAgentSettings(BaseModel):
    """``job_agent`` in ``workspace.yaml``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Keep warm kernels for notebook jobs on "
                          "local compute (started on demand, exits when idle).")
    pool_size: int = Field(default=1, ge=0, le=16,
                           description="Warm kernels kept per interpreter "
                           "(an environment's first job starts cold and warms its pool).")
    interpreters: int = Field(default=4, ge=1, le=32,
                              description="Most interpreters (environments) kept warm at once: "
                              "those jobs asked for most recently.")
    idle_timeout_s: float = Field(default=300.0, gt=0,
                                  description="The agent exits after this long without a job.")
    memory_mb: int = Field(default=1024, ge=0, description="Most memory (resident) the warm "
                           "workers and their kernels may take together; none is started above.")


def read_settings(workspace: str | Path) -> JobAgentSettings | None:
    """The agent's settings from ``workspace.yaml``; ``None`` when it is turned off."""
    if switched_off():
        return None
    try:
        import yaml

        data: Any = yaml.safe_load((Path(workspace) / "workspace.yaml").read_text("utf-8"))
        settings = JobAgentSettings.model_validate((data or {}).get("job_agent") or {})
    except Exception:
        return None  # an accelerator never fails a job: unreadable settings mean no agent
    return settings if settings.enabled else None
