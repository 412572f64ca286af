"""Which machine runs a job, for a workspace whose store several machines share.

A job records the host (``socket.gethostname()``) and the workspace folder whose runner runs it
(``spec["runner_host"]``). A runner's lock and pid files live in that folder on that machine, so
only there can the reaper tell that the runner died, and only there can a cancel signal its
processes: elsewhere a cancel is a request in the store, which the runner polls. In a team
workspace the runners of each machine beat in the store; another machine reaps a job only when
its machine's heartbeat expired.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Protocol

KEY = "runner_host"


def this_host(workspace_path: Path) -> dict[str, str]:
    """What a job submitted from ``workspace_path`` on this machine records."""
    return {"host": socket.gethostname(), "workspace": str(workspace_path)}


def is_team(ws: Any) -> bool:
    """Whether ``ws`` is a team workspace: a store other than SQLite, or a remote artifact
    store."""
    return not getattr(ws.store, "is_sqlite", True) or ws.artifacts.remote is not None


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


# --- heartbeats: how another machine tells that a runner's machine is gone -------------------
ENV_BEAT = "MLWS_HOST_HEARTBEAT_S"
ENV_EXPIRY = "MLWS_HOST_HEARTBEAT_EXPIRY_S"


def _seconds(env: str, default: float) -> float:
    try:
        return max(0.1, float(os.environ.get(env, default)))
    except ValueError:
        return default


def heartbeat_key(recorded: dict[str, Any]) -> str:
    """The store meta key of one machine's (host and workspace folder's) heartbeat; hashed, as
    meta keys are short."""
    ident = f"{recorded.get('host')}\0{recorded.get('workspace')}".encode()
    return "runner_heartbeat:" + hashlib.sha256(ident).hexdigest()[:40]


class Meta(Protocol):
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


def start_heartbeat(store: Meta, workspace_path: Path) -> threading.Event:
    """Beat for this machine's runners (every ``$MLWS_HOST_HEARTBEAT_S``, 20 s) until the
    returned event is set."""
    stop = threading.Event()
    key = heartbeat_key(this_host(workspace_path))
    interval = _seconds(ENV_BEAT, 20.0)

    def loop() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried on the next one
                store.set_meta(key, repr(time.time()))
            if stop.wait(interval):
                return

    threading.Thread(target=loop, name="mlws-heartbeat", daemon=True).start()
    return stop


def expired(store: Meta, spec: dict[str, Any], created_at: float) -> str | None:
    """Why another machine's job counts as orphaned (its machine's runners stopped beating for
    ``$MLWS_HOST_HEARTBEAT_EXPIRY_S``, 120 s), or None while they beat."""
    recorded = spec.get(KEY)
    if not isinstance(recorded, dict):
        return None
    limit = _seconds(ENV_EXPIRY, 120.0)
    now = time.time()
    raw = store.get_meta(heartbeat_key(recorded))
    try:
        last = float(raw) if raw is not None else None
    except ValueError:
        last = None
    if last is None:
        if now - created_at < limit:
            return None  # its runner may not have beaten yet
        since = "never"
    elif now - last < limit:
        return None
    else:
        since = f"{now - last:.0f} s ago"
    return (f"its machine {recorded.get('host')} ({recorded.get('workspace')}) stopped "
            f"answering: the last heartbeat of its runners was {since} (limit {limit:.0f} s)")
