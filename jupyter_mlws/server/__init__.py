"""The Jupyter Server extension: the workspace's REST API under ``{base_url}mlws/api/``.

The routes (``handlers.py``) are thin: they parse a request, call the one :class:`Workspace`
facade and serialize what it returns; the contract is ``openapi.yaml`` beside this file. The
facade is synchronous (SQLite, files, Docker), so every call runs on a small thread pool and the
server stays responsive; environment builds run in their own background threads.

Configuration (``jupyter_server_config.py`` or the command line)::

    c.MlwsServerConfig.workspace_path = "/path/to/project/.mlws"
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Integer, Unicode
from traitlets.config import Configurable

if TYPE_CHECKING:
    from jupyter_mlws.environments.builds import BuildResult
    from jupyter_mlws.workspace import Workspace

API_PATH = "mlws/api"
#: Where the settings of the Jupyter web application keep the extension's state.
SETTINGS_KEY = "mlws"


class MlwsServerConfig(Configurable):
    """Settings of the jupyter_mlws server extension."""

    workspace_path = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The workspace the REST API serves. Unset: $MLWS_WORKSPACE, else the nearest "
        ".mlws/ folder upwards from the server's root folder, else ~/.mlws (created on first "
        "use).",
    )
    outputs_dir = Unicode(
        "mlws-outputs",
        config=True,
        help="Folder, relative to the server's root folder, where a job's output notebook is "
        "copied to be opened.",
    )
    max_workers = Integer(
        8, config=True, help="Threads that run workspace calls (reads, writes, submissions)."
    )


@dataclass
class BuildRun:
    """A build this server started: its live log while it runs, its outcome after."""

    env_hash: str
    builder: str
    environment: str
    status: str = "building"  # building | succeeded | cached | failed
    lines: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status != "building"

    def view(self) -> dict[str, Any]:
        """The fields of the ``Build`` wire model."""
        return {
            "status": self.status, "env_hash": self.env_hash, "builder": self.builder,
            "environment": self.environment, "result": self.result, "error": self.error,
            "log": "\n".join(list(self.lines)), "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class BuildTracker:
    """Environment builds started through the API, one background thread each.

    A second request for a hash already building joins the running build.
    """

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str], BuildRun] = {}
        self._lock = threading.Lock()

    def get(self, env_hash: str, builder: str) -> BuildRun | None:
        return self._runs.get((env_hash, builder))

    def start(
        self,
        env_hash: str,
        builder: str,
        environment: str,
        build: Callable[[Callable[[str], None]], BuildResult],
    ) -> BuildRun:
        """Run ``build(log)`` in a thread unless this hash is building already."""
        with self._lock:
            current = self._runs.get((env_hash, builder))
            if current is not None and not current.done:
                return current
            run = BuildRun(env_hash=env_hash, builder=builder, environment=environment)
            self._runs[(env_hash, builder)] = run
        threading.Thread(
            target=self._run, args=(run, build), name=f"mlws-build-{env_hash[:12]}", daemon=True
        ).start()
        return run

    @staticmethod
    def _run(run: BuildRun, build: Callable[[Callable[[str], None]], BuildResult]) -> None:
        from jupyter_mlws.errors import MlwsError

        try:
            result = build(run.lines.append)
        except BaseException as exc:  # recorded for GET .../build; the thread ends here
            run.error = str(exc) if isinstance(exc, MlwsError) else f"{type(exc).__name__}: {exc}"
            run.finished_at = datetime.now(timezone.utc)
            run.status = "failed"
            return
        record = result.to_dict()
        record.pop("log", None)
        run.result = record
        run.finished_at = datetime.now(timezone.utc)
        run.status = "cached" if result.cached else "succeeded"


class MlwsState:
    """What the handlers of one server share: the workspace (opened on first use), the thread
    pool, the root folder and the builds this server started."""

    def __init__(self, config: MlwsServerConfig, root_dir: str | Path, log: Any) -> None:
        self.config = config
        self.root_dir = Path(root_dir).expanduser().resolve()
        self.log = log
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, int(config.max_workers)), thread_name_prefix="mlws-api"
        )
        self.builds = BuildTracker()
        #: Until when (``time.monotonic()``) list views treat Docker as down without asking.
        self.docker_down_until = 0.0
        self._workspace: Workspace | None = None
        self._lock = threading.Lock()

    @property
    def workspace(self) -> Workspace:
        """The workspace, opened once (on the first request that needs it)."""
        ws = self._workspace
        if ws is not None:
            return ws
        with self._lock:
            if self._workspace is None:
                self._workspace = self._open()
                self.log.info("jupyter_mlws: serving the workspace %s", self._workspace.path)
            return self._workspace

    def _open(self) -> Workspace:
        import os

        from jupyter_mlws.errors import WorkspaceNotFoundError
        from jupyter_mlws.workspace import ENV_WORKSPACE, Workspace, find_workspace

        if self.config.workspace_path:
            return Workspace.open(self.config.workspace_path)
        if not os.environ.get(ENV_WORKSPACE):
            # the project the server was started in, as the CLI finds it from its folder
            try:
                return Workspace.open(find_workspace(self.root_dir))
            except WorkspaceNotFoundError:
                pass
        return Workspace.open()

    def docker_known_down(self) -> bool:
        return time.monotonic() < self.docker_down_until

    def mark_docker_down(self, seconds: float = 30.0) -> None:
        self.docker_down_until = time.monotonic() + seconds

    def close(self) -> None:
        """Stop the thread pool and close the workspace's store."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._workspace is not None:
                self._workspace.close()
                self._workspace = None


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the REST routes under ``{base_url}mlws/api/``."""
    from jupyter_mlws.server.handlers import routes

    config = MlwsServerConfig(parent=serverapp)
    web_app = serverapp.web_app
    state = MlwsState(config, serverapp.root_dir, serverapp.log)
    web_app.settings[SETTINGS_KEY] = state
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    serverapp.log.info("jupyter_mlws: REST API at %s%s/", web_app.settings["base_url"], API_PATH)


__all__ = ["API_PATH", "MlwsServerConfig", "MlwsState"]
