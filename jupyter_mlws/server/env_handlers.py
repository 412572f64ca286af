"""REST routes of environments over time: which environment versions were built on a base that
has moved since (``GET /environments/outdated``, what ``mlws env outdated`` lists), and their
rebuild on the current base from the lock, optionally rolling the deployments serving them
(``POST .../rebuild``, what ``mlws env rebuild NAME:VER [--redeploy]`` does).

A rebuild runs in a background thread (it builds an image, and a redeploy rolls replicas); the
``POST`` answers 202 with the operation, which ``GET .../rebuild`` follows (log, then the outcome,
or the typed error's JSON body on failure).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join

from jupyter_mlws.errors import ConflictError, NotFoundError
from jupyter_mlws.server import API_PATH
from jupyter_mlws.server.endpoint_handlers import plain
from jupyter_mlws.server.endpoint_runs import Operation, Operations, Work, tracker
from jupyter_mlws.server.handlers import MlwsHandler
from jupyter_mlws.server.wire import Query, parse_query

#: Where the tracker lives in the web application's settings.
SETTINGS_KEY = "mlws_rebuild_runs"


class RebuildQuery(Query):
    redeploy: bool = False


class RebuildRuns(Operations):
    """The rebuilds this server started, by environment reference; a second rebuild of one
    still running is refused (409)."""

    def get(self, ref: str) -> Operation:
        run = self.find(ref)
        if run is None:
            raise NotFoundError(f"This server started no rebuild of environment {ref}.",
                                hint="Start one with POST .../rebuild.")
        return run

    def start_rebuild(self, ref: str, redeploy: bool, rebuild: Work) -> Operation:
        """Run ``rebuild(log)`` in a thread; its return value is what the facade returned."""
        return self.start(
            ref, {"environment": ref, "redeploy": redeploy}, rebuild,
            lambda: ConflictError(f"The environment {ref} is being rebuilt already.",
                                  hint="Follow it with GET .../rebuild, then try again."),
            name=f"mlws-rebuild-{ref}")


def rebuild_runs(settings: dict[str, Any]) -> RebuildRuns:
    """The server's tracker of environment rebuilds."""
    return tracker(settings, SETTINGS_KEY, RebuildRuns)


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
            return dict(plain(envs.rebuild(env, log=log, redeploy=q.redeploy)))

        run = rebuild_runs(self.settings).start_rebuild(env.ref, q.redeploy, rebuild)
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
