"""Which machine runs a job, for a workspace whose store several machines share.

A job records the host (``socket.gethostname()``) and the workspace folder whose runner runs it
(``spec["runner_host"]``). A runner's lock and pid files live in that folder on that machine, so
only there can the reaper tell that the runner died, and only there can a cancel signal its
processes: elsewhere a cancel is a request in the store, which the runner polls.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

KEY = "runner_host"


def this_host(workspace_path: Path) -> dict[str, str]:
    """What a job submitted from ``workspace_path`` on this machine records."""
    return {"host": socket.gethostname(), "workspace": str(workspace_path)}


def runs_elsewhere(spec: dict[str, Any], workspace_path: Path) -> bool:
    """Whether a job's runner is on another machine (or another workspace folder). Jobs from
    before hosts were recorded count as local, as they always did."""
    recorded = spec.get(KEY)
    if not isinstance(recorded, dict):
        return False
    return recorded != this_host(workspace_path)


def describe(spec: dict[str, Any]) -> str | None:
    """``host:folder`` of a job's runner, for listings (None when not recorded)."""
    recorded = spec.get(KEY)
    if not isinstance(recorded, dict):
        return None
    return f"{recorded.get('host')}:{recorded.get('workspace')}"
