"""REST routes of environments over time: which environment versions were built on a base that
has moved since (``GET /environments/outdated``, what ``mlws env outdated`` lists), and their
rebuild on the current base from the lock, optionally rolling the deployments serving them
(``POST .../rebuild``, what ``mlws env rebuild NAME:VER [--redeploy]`` does).

A rebuild runs in a background thread (it builds an image, and a redeploy rolls replicas); the
``POST`` answers 202 with the operation, which ``GET .../rebuild`` follows (log, then the outcome,
or the typed error's JSON body on failure).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join

from jupyter_mlws.errors import ConflictError, MlwsError, NotFoundError
from jupyter_mlws.server import API_PATH
from jupyter_mlws.server.endpoint_handlers import plain
from jupyter_mlws.server.handlers import MlwsHandler
from jupyter_mlws.server.wire import Query, parse_query

#: Where the tracker lives in the web application's settings.
SETTINGS_KEY = "mlws_rebuild_runs"
#: The most log lines an operation keeps (the oldest are dropped first).
MAX_LINES = 2000


class RebuildQuery(Query):
    redeploy: bool = False


@dataclass
class RebuildRun:
    """One rebuild: ``running`` → ``succeeded`` (with what the facade returned) or ``failed``."""

    environment: str
    redeploy: bool
    status: str = "running"
    lines: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None

    def log(self, line: str) -> None:
        self.lines.append(str(line).rstrip("\n"))
        if len(self.lines) > MAX_LINES:
            del self.lines[: len(self.lines) - MAX_LINES]

    def view(self) -> dict[str, Any]:
        """The ``RebuildOperation`` wire model."""
        return {"environment": self.environment, "redeploy": self.redeploy,
                "status": self.status, "log": "\n".join(list(self.lines)),
                "result": plain(self.result), "error": self.error,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}


class RebuildRuns:
    """The rebuilds this server started, by environment reference; a second rebuild of one
    still running is refused (409)."""

    def __init__(self) -> None:
        self._runs: dict[str, RebuildRun] = {}
        self._lock = threading.Lock()

    def get(self, ref: str) -> RebuildRun:
        run = self._runs.get(ref)
        if run is None:
            raise NotFoundError(f"This server started no rebuild of environment {ref}.",
                                hint="Start one with POST .../rebuild.")
        return run

    def start(self, ref: str, redeploy: bool,
              rebuild: Callable[[Callable[[str], None]], dict[str, Any]]) -> RebuildRun:
        """Run ``rebuild(log)`` in a thread."""
        with self._lock:
            current = self._runs.get(ref)
            if current is not None and current.status == "running":
                raise ConflictError(f"The environment {ref} is being rebuilt already.",
                                    hint="Follow it with GET .../rebuild, then try again.")
            run = self._runs[ref] = RebuildRun(ref, redeploy)
        threading.Thread(target=self._run, args=(run, rebuild), daemon=True,
                         name=f"mlws-rebuild-{ref}").start()
        return run

    @staticmethod
    def _run(run: RebuildRun, rebuild: Callable[[Callable[[str], None]], dict[str, Any]]) -> None:
        status = "failed"
        try:
            run.result = rebuild(run.log)
            status = "succeeded"
        except MlwsError as exc:
            run.error = exc.to_dict()
        except BaseException as exc:  # recorded for GET .../rebuild; the thread ends here
            run.error = {"error": "internal_error",
                         "message": f"Unexpected error: {type(exc).__name__}: {exc}",
                         "hint": "This is a bug in jupyter_mlws."}
        run.finished_at = datetime.now(timezone.utc)
        run.status = status


def rebuild_runs(settings: dict[str, Any]) -> RebuildRuns:
    """The server's tracker (made on first use)."""
    runs = settings.get(SETTINGS_KEY)
    if runs is None:
        runs = settings.setdefault(SETTINGS_KEY, RebuildRuns())
    assert isinstance(runs, RebuildRuns)
    return runs


def _version(version: str) -> str | None:
    return None if version == "latest" else version


class OutdatedHandler(MlwsHandler):
    """Environment versions built on a base that moved, with the jobs, models and deployments
    using them."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        ws = self.state.workspace
        self.send({"items": plain(await self.call(ws.environments.outdated))})


class RebuildHandler(MlwsHandler):
    """``POST``: start a rebuild (``redeploy=true`` also rolls its deployments); ``GET``: the
    rebuild this server started, running or finished."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        envs = self.state.workspace.environments
        env = await self.call(envs.get, name, _version(version))
        self.send(rebuild_runs(self.settings).get(env.ref).view())

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str, version: str) -> None:
        q = parse_query(RebuildQuery, self.request.query_arguments)
        envs = self.state.workspace.environments
        env = await self.call(envs.get, name, _version(version))  # unknown: a typed 404

        def rebuild(log: Callable[[str], None]) -> dict[str, Any]:
            return envs.rebuild(env, log=log, redeploy=q.redeploy)

        run = rebuild_runs(self.settings).start(env.ref, q.redeploy, rebuild)
        self.set_header("Location", url_path_join(
            self.base_url, API_PATH, "environments", env.name, "versions", str(env.version),
            "rebuild"))
        self.send(run.view(), status=202)


_SEG = r"[^/]+"


def env_routes() -> list[tuple[str, type[MlwsHandler]]]:
    """The URL patterns, relative to ``{base_url}mlws/api``."""
    return [
        (r"/environments/outdated", OutdatedHandler),
        (rf"/environments/(?P<name>{_SEG})/versions/(?P<version>{_SEG})/rebuild",
         RebuildHandler),
    ]
