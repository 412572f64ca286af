"""The job agent: warm kernels for notebook jobs on this machine.

One agent per user and workspace, started on demand by a job runner (detached, no root, no
service), keeps a small pool of warm workers per interpreter (:mod:`.worker`: papermill imported,
a kernel started) and hands one to each notebook job that can use it; the pool refills in the
background, and the agent exits when idle. It listens on ``<workspace>/agent/agent.sock`` (a
folder only its owner can enter) and records who it is in ``agent.json`` (PID, start time and a
token in its environment); a runner trusts the socket only when the peer's PID is that one.

The agent only accelerates: whenever it is absent, broken or says no, the job runs exactly as
without it. Settings: ``job_agent`` in ``workspace.yaml`` (:mod:`.settings`); ``MLWS_JOB_AGENT=0`` turns it
off. This module is standard library only: the ``mlws`` fast path (:mod:`.fast`) imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_mlws.agent.settings import JobAgentSettings, read_settings

AGENT_DIRNAME = "agent"
ENV_SWITCH = "MLWS_JOB_AGENT"


def agent_dir(workspace: str | Path) -> Path:
    return Path(workspace) / AGENT_DIRNAME


def switched_off() -> bool:
    """Whether ``MLWS_JOB_AGENT`` turns the agent off for this process."""
    import os

    return os.environ.get(ENV_SWITCH, "").lower() in ("0", "off", "false", "no")


def __getattr__(name: str) -> Any:
    """``JobAgentSettings`` and ``read_settings`` (pydantic) load on first use."""
    if name in ("JobAgentSettings", "read_settings"):
        from jupyter_mlws.agent import settings

        return getattr(settings, name)
    raise AttributeError(name)


__all__ = ["AGENT_DIRNAME", "ENV_SWITCH", "JobAgentSettings", "agent_dir", "read_settings",
           "switched_off"]
