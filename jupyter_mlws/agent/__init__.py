"""The job agent: warm kernels for notebook jobs on this machine.

One agent per user and workspace, started on demand by a job runner (detached, no root, no
service), keeps a small pool of warm workers per interpreter (:mod:`.worker`: papermill imported,
a kernel started) and hands one to each notebook job that can use it; the pool refills in the
background, and the agent exits when idle. It listens on ``<workspace>/agent/agent.sock`` (a
folder only its owner can enter) and records who it is in ``agent.json`` (PID, start time and a
token in its environment); a runner trusts the socket only when the peer's PID is that one.

The agent only accelerates: whenever it is absent, broken or says no, the job runs exactly as
without it. Settings: ``job_agent`` in ``workspace.yaml``; ``MLWS_JOB_AGENT=0`` turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

AGENT_DIRNAME = "agent"
ENV_SWITCH = "MLWS_JOB_AGENT"


class JobAgentSettings(BaseModel):
    """``job_agent`` in ``workspace.yaml``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Keep warm kernels for notebook jobs on "
                          "local compute (started on demand, exits when idle).")
    pool_size: int = Field(default=1, ge=0, le=16,
                           description="Warm kernels kept per interpreter.")
    idle_timeout_s: float = Field(default=300.0, gt=0,
                                  description="The agent exits after this long without a job.")
    memory_mb: int = Field(default=1024, ge=0, description="Most memory (resident) the warm "
                           "workers and their kernels may take together; none is started above.")


def agent_dir(workspace: str | Path) -> Path:
    return Path(workspace) / AGENT_DIRNAME


def read_settings(workspace: str | Path) -> JobAgentSettings | None:
    """The agent's settings from ``workspace.yaml``; ``None`` when it is turned off."""
    if os.environ.get(ENV_SWITCH, "").lower() in ("0", "off", "false", "no"):
        return None
    try:
        import yaml

        data: Any = yaml.safe_load((Path(workspace) / "workspace.yaml").read_text("utf-8"))
        settings = JobAgentSettings.model_validate((data or {}).get("job_agent") or {})
    except Exception:
        return None  # an accelerator never fails a job: unreadable settings mean no agent
    return settings if settings.enabled else None
