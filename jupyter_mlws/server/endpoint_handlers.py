"""REST routes of online endpoints (``/endpoints/...``): list, show, create, traffic, delete,
invoke (the test box), deployment logs addressed by byte offset.

Authenticated and authorized like every route (:class:`MlwsHandler`). What a caller names on the
host is confined: the code folder and the scoring script lie under the server's root folder, the
model and the environment are references to registered assets. The endpoint's keys are used by
the server to invoke it and are never part of an answer; ``get-credentials`` has no route (a key
handed to a browser page outlives the Jupyter session that asked for it; the CLI prints them).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from pydantic import Field

from jupyter_mlws.errors import UnsafePathError, ValidationError
from jupyter_mlws.server import API_PATH
from jupyter_mlws.server.confine import check_text
from jupyter_mlws.server.endpoint_runs import runs_of
from jupyter_mlws.server.handlers import MlwsHandler
from jupyter_mlws.server.wire import Body, LogQuery, Query, parse_body, parse_query, utc

#: How long an invoke through the API may wait for the endpoint (seconds).
INVOKE_TIMEOUT_S = 60.0


# --- wire models ----------------------------------------------------------------------------


class EndpointCreate(Body):
    """``POST /endpoints``."""

    name: str = Field(min_length=1)
    description: str | None = None
    auth_mode: str = "key"
    tags: dict[str, str] = Field(default_factory=dict)


class DeploymentCreate(Body):
    """``POST /endpoints/{endpoint}/deployments``: creates it, or updates it (rolling)."""

    name: str = Field(min_length=1)
    model: str | None = Field(None, description="azureml:NAME:VERSION, NAME:VERSION or NAME@latest")
    environment: str | None = Field(None, description="A registered environment; none: the "
                                    "server's interpreter")
    code: str | None = Field(None, min_length=1, description="Folder relative to the server "
                             "root; none for a no-code deployment of an mlflow_model.")
    scoring_script: str | None = Field(None, min_length=1,
                                       description="Relative to the code folder.")
    instance_count: int = Field(1, ge=1, le=16)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    request_timeout_ms: int | None = Field(None, ge=1, le=180_000)
    description: str | None = None
    all_traffic: bool = False


class DeployQuery(Query):
    wait: bool = True


class TrafficUpdate(Body):
    """``PUT /endpoints/{endpoint}/traffic``: ``{"blue": 90, "green": 10}`` or the CLI's text."""

    traffic: dict[str, int] | str


class InvokeRequest(Body):
    """``POST /endpoints/{endpoint}/invoke``: a JSON ``request`` or a raw ``request_text``."""

    request: Any = None
    request_text: str | None = None
    deployment: str | None = None


# --- helpers ----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A view as JSON-ready data: datetimes as aware ISO 8601 text."""
    if isinstance(value, datetime):
        aware = utc(value)
        return aware.isoformat() if aware is not None else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _scoring_script(text: str) -> str:
    check_text(text, "scoring script")
    p = PurePosixPath(text.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise UnsafePathError(f"The scoring script {text!r} must be a path inside the code "
                              "folder.", hint="Give it relative to the code folder, e.g. "
                              "'score.py'.")
    return p.as_posix()


class EndpointBase(MlwsHandler):
    def deployment_spec(self, endpoint: str, body: DeploymentCreate) -> dict[str, Any]:
        """The facade's deployment spec, with the code folder confined to the server root.
        Without code and scoring script it is a no-code deployment (the facade accepts it for
        an ``mlflow_model`` only, and says so otherwise)."""
        spec: dict[str, Any] = {
            "name": body.name, "endpoint_name": endpoint,
            "instance_count": body.instance_count,
            "environment_variables": body.environment_variables,
        }
        if body.code is not None or body.scoring_script is not None:
            spec["code_configuration"] = self._code_configuration(body)
        for key in ("model", "environment", "description"):
            value = getattr(body, key)
            if value is not None:
                check_text(value, key)
                spec[key] = value
        if body.request_timeout_ms is not None:
            spec["request_settings"] = {"request_timeout_ms": body.request_timeout_ms}
        return spec

    def _code_configuration(self, body: DeploymentCreate) -> dict[str, str]:
        if body.code is None or body.scoring_script is None:
            given, missing = (("code", "scoring_script") if body.scoring_script is None
                              else ("scoring_script", "code"))
            raise ValidationError(f"The deployment gives {given} without {missing}.",
                                  hint="Give both (the folder and the script with init() and "
                                  "run(raw_data) in it), or neither for an mlflow_model.")
        code = self.under_root(body.code, "code")
        script = _scoring_script(body.scoring_script)
        if not code.is_dir():
            raise ValidationError(f"The code folder {body.code!r} is not a folder in the "
                                  "server's root folder.", hint="Give it as the file browser "
                                  "shows it.")
        self.under_root(f"{body.code.rstrip('/')}/{script}", "scoring script")  # no link out
        return {"code": str(code), "scoring_script": script}


# --- routes -----------------------------------------------------------------------------------


class EndpointsHandler(EndpointBase):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from jupyter_mlws.endpoints.views import list_with_deployments

        ws = self.state.workspace
        self.send({"items": plain(await self.call(list_with_deployments, ws))})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = parse_body(EndpointCreate, self.request.body)
        ws = self.state.workspace

        def create() -> dict[str, Any]:
            from jupyter_mlws.endpoints.views import endpoint_with_deployments

            ws.endpoints.create(body.model_dump(exclude_none=True))
            return endpoint_with_deployments(ws, body.name)

        view = await self.call(create)
        self.set_header("Location", url_path_join(self.base_url, API_PATH, "endpoints",
                                                  body.name))
        self.send(plain(view), status=201)


class EndpointHandler(EndpointBase):
    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str) -> None:
        from jupyter_mlws.endpoints.views import endpoint_with_deployments

        ws = self.state.workspace
        self.send(plain(await self.call(endpoint_with_deployments, ws, endpoint)))

    @tornado.web.authenticated
    @authorized
    async def delete(self, endpoint: str) -> None:
        ws = self.state.workspace
        await self.call(ws.endpoints.delete, endpoint)
        self.send({"deleted": endpoint})


class TrafficHandler(EndpointBase):
    @tornado.web.authenticated
    @authorized
    async def put(self, endpoint: str) -> None:
        body = parse_body(TrafficUpdate, self.request.body)
        ws = self.state.workspace

        def update() -> dict[str, Any]:
            from jupyter_mlws.endpoints.views import endpoint_with_deployments

            ws.endpoints.update_traffic(endpoint, body.traffic)
            return endpoint_with_deployments(ws, endpoint)

        self.send(plain(await self.call(update)))


class InvokeHandler(EndpointBase):
    @tornado.web.authenticated
    @authorized
    async def post(self, endpoint: str) -> None:
        from jupyter_mlws.endpoints.views import request_bytes, timed_invoke

        body = parse_body(InvokeRequest, self.request.body)
        data = request_bytes(body.request, body.request_text)
        ws = self.state.workspace
        self.send(await self.call(timed_invoke, ws, endpoint, data,
                                  deployment=body.deployment or None,
                                  timeout=INVOKE_TIMEOUT_S))


class DeploymentsHandler(EndpointBase):
    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str) -> None:
        ws = self.state.workspace
        self.send({"items": plain(await self.call(ws.endpoints.list_deployments, endpoint))})

    @tornado.web.authenticated
    @authorized
    async def post(self, endpoint: str) -> None:
        """Answers once the deployment is Succeeded (201) or Failed (422, the previous version
        keeps serving); meanwhile ``GET`` shows it Creating. With ``wait=false``: 202 at once,
        and ``GET .../operation`` follows the build and the outcome."""
        from jupyter_mlws.endpoints.views import check_refs

        q = parse_query(DeployQuery, self.request.query_arguments)
        body = parse_body(DeploymentCreate, self.request.body)
        ws = self.state.workspace
        spec = self.deployment_spec(endpoint, body)

        def check() -> None:
            ws.endpoints.show(endpoint)  # an unknown endpoint: 404 before anything is built
            check_refs(ws, spec)

        def create(log: Any = None) -> dict[str, Any]:
            view = ws.endpoints.create_deployment(spec, all_traffic=body.all_traffic, log=log)
            return dict(plain(view))

        await self.call(check)
        url = url_path_join(self.base_url, API_PATH, "endpoints", endpoint, "deployments",
                            body.name)
        if not q.wait:
            run = runs_of(self.settings).start_creation(endpoint, body.name, create)
            self.set_header("Location", url + "/operation")
            self.send(run.view(), status=202)
            return
        view = await self.call(create)
        self.set_header("Location", url)
        self.send(view, status=201)


class DeploymentOperationHandler(EndpointBase):
    """A creation started with ``wait=false``: running, succeeded or failed, with its log."""

    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str, deployment: str) -> None:
        self.send(runs_of(self.settings).get(endpoint, deployment).view())


class DeploymentHandler(EndpointBase):
    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str, deployment: str) -> None:
        ws = self.state.workspace
        self.send(plain(await self.call(ws.endpoints.show_deployment, endpoint, deployment)))

    @tornado.web.authenticated
    @authorized
    async def delete(self, endpoint: str, deployment: str) -> None:
        ws = self.state.workspace
        await self.call(ws.endpoints.delete_deployment, endpoint, deployment)
        self.send({"deleted": deployment})


class DeploymentLogsHandler(EndpointBase):
    """The replicas' output from a byte offset (poll with the returned offset to follow)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str, deployment: str) -> None:
        from jupyter_mlws.endpoints.views import read_log, read_log_tail

        q = parse_query(LogQuery, self.request.query_arguments)
        ws = self.state.workspace
        if q.tail is not None:
            self.send(await self.call(read_log_tail, ws, endpoint, deployment, q.tail))
        else:
            self.send(await self.call(read_log, ws, endpoint, deployment, q.offset))


_SEG = r"[^/]+"


def endpoint_routes() -> list[tuple[str, type[MlwsHandler]]]:
    """The endpoint URL patterns, relative to ``{base_url}mlws/api``."""
    ep = rf"/endpoints/(?P<endpoint>{_SEG})"
    dep = rf"{ep}/deployments/(?P<deployment>{_SEG})"
    return [
        (r"/endpoints", EndpointsHandler),
        (ep, EndpointHandler),
        (rf"{ep}/traffic", TrafficHandler),
        (rf"{ep}/invoke", InvokeHandler),
        (rf"{ep}/deployments", DeploymentsHandler),
        (dep, DeploymentHandler),
        (rf"{dep}/logs", DeploymentLogsHandler),
        (rf"{dep}/operation", DeploymentOperationHandler),
    ]
