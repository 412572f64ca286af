"""REST handlers: parse the request, call the Workspace facade, serialize the answer.

Every verb is ``@tornado.web.authenticated`` (403 without Jupyter's token or cookie; POST and
PATCH with a cookie also need the XSRF token) and ``@authorized`` on the ``mlws`` resource.
Errors come back as the JSON ``Error`` body of ``openapi.yaml``: an :class:`MlwsError` with its
own status, a bad query or body with 400, an unknown route or asset kind with 404.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from http.client import responses
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from jupyter_mlws.errors import (
    DockerUnavailableError,
    MlwsError,
    NotFoundError,
    SpecError,
    UnsafePathError,
    ValidationError,
)
from jupyter_mlws.jobs.requests import NotebookJobRequest, parse_literal
from jupyter_mlws.server import API_PATH, SETTINGS_KEY, MlwsState
from jupyter_mlws.server.confine import confine_inputs, resolve_under_root
from jupyter_mlws.server.wire import (
    KIND_SEGMENTS,
    AssetListQuery,
    AssetPatch,
    Build,
    BuildQuery,
    JobListQuery,
    LogChunk,
    LogQuery,
    NotebookParameter,
    NotebookQuery,
    NotebookSubmission,
    Page,
    VersionListQuery,
    parse_body,
    parse_query,
)
from jupyter_mlws.team.identity import acting_as

T = TypeVar("T")

#: The most log bytes one response carries; a client following a log asks again from ``offset``.
LOG_CHUNK_BYTES = 1 << 20
_HTTP_CODES = {400: "invalid", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "too_large"}


class MlwsHandler(APIHandler):
    """The base of every route: the shared state, executor calls and typed JSON errors."""

    auth_resource = "mlws"

    @property
    def state(self) -> MlwsState:
        state: MlwsState = self.settings[SETTINGS_KEY]
        return state

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (synchronous, possibly slow) facade call on the extension's thread pool, acting
        as the Jupyter user who sent the request (what jobs and versions record as
        ``created_by``, and who ``ME`` is)."""
        return await IOLoop.current().run_in_executor(
            self.state.executor,
            functools.partial(_as_user, self.jupyter_user(), fn, *args, **kwargs),
        )

    def jupyter_user(self) -> str | None:
        """The authenticated Jupyter user's name (``User.username``), never a request field."""
        user = self.current_user
        name = user if isinstance(user, str) else getattr(user, "username", None)
        return name if isinstance(name, str) and name.strip() else None

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, MlwsError):
            status, body = exc.http_status, exc.to_dict()
        elif isinstance(exc, tornado.web.HTTPError):
            status = status_code
            body = {"error": _HTTP_CODES.get(status, "http_error"),
                    "message": exc.log_message or exc.reason or responses.get(status, "Error")}
            if status == 403 and not exc.log_message:
                body["message"] = "Forbidden: this API needs Jupyter's authentication."
                body["hint"] = ("Send the server's token (header 'Authorization: token ...') or "
                                "log in from a browser.")
        elif exc is not None:
            status = 500
            body = {"error": "internal_error",
                    "message": f"Unexpected error: {type(exc).__name__}: {exc}",
                    "hint": "This is a bug in jupyter_mlws; the server log has the traceback."}
        else:
            status = status_code
            body = {"error": _HTTP_CODES.get(status, "http_error"),
                    "message": responses.get(status, "Error")}
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, default=str))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, MlwsError):  # an answer, not a crash: no traceback
            log = self.log.error if value.http_status >= 500 else self.log.info
            log("mlws %s %s -> %s %s: %s", self.request.method, self.request.path,
                value.http_status, value.code, value)
            return
        super().log_exception(typ, value, tb)

    # --- shared pieces --------------------------------------------------------------------------

    def ops(self, kind_segment: str) -> Any:
        kind = KIND_SEGMENTS.get(kind_segment)
        if kind is None:
            raise NotFoundError(f"There is no asset kind {kind_segment!r}.",
                                hint=f"Use one of: {', '.join(KIND_SEGMENTS)}.")
        return self.state.workspace.operations(kind)

    def under_root(self, rel: str, what: str) -> Path:
        return resolve_under_root(self.state.root_dir, rel, what)


# --- helpers (no HTTP in them) ----------------------------------------------------------------


def _as_user(user: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with acting_as(user):
        return fn(*args, **kwargs)


def asset_view(state: MlwsState, asset: Any, *, describe: bool = False) -> dict[str, Any]:
    """An asset's public fields; environments say whether they are built (``cached``)."""
    data: dict[str, Any] = asset.public_dict()
    if asset.kind == "environment":
        if describe:
            data.update(state.workspace.describe(asset))
        data["cached"] = env_cached(state, asset)
    return data


def env_cached(state: MlwsState, env: Any) -> bool:
    """Its venv or Docker image exists (fast lookups); Docker down means not cached."""
    envs = state.workspace.environments
    try:
        if envs.lookup(env, "venv") is not None:
            return True
    except Exception as exc:  # a list never fails because one lookup did
        state.log.debug("mlws: venv lookup of %s failed: %s", env.ref, exc)
    if state.docker_known_down():
        return False
    try:
        return envs.lookup(env, "docker") is not None
    except DockerUnavailableError:
        state.mark_docker_down()
    except Exception as exc:
        state.log.debug("mlws: docker lookup of %s failed: %s", env.ref, exc)
    return False


# --- routes ---------------------------------------------------------------------------------


class WorkspaceHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.send(await self.call(lambda: self.state.workspace.info()))


class AssetListHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, kind: str) -> None:
        q = parse_query(AssetListQuery, self.request.query_arguments)
        tags = q.tags()
        state = self.state

        def page() -> dict[str, Any]:
            ops = self.ops(kind)
            filters: dict[str, Any] = {"tags": tags, "include_archived": q.include_archived,
                                       "name_contains": q.q or None}
            items = ops.list(limit=q.limit, offset=q.offset, **filters)
            return Page(items=[asset_view(state, a) for a in items], total=ops.count(**filters),
                        limit=q.limit, offset=q.offset).model_dump()

        self.send(await self.call(page))


class AssetVersionsHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, kind: str, name: str) -> None:
        q = parse_query(VersionListQuery, self.request.query_arguments)
        state = self.state

        def page() -> dict[str, Any]:
            ops = self.ops(kind)
            items = ops.list(name, include_archived=q.include_archived, limit=q.limit,
                             offset=q.offset)
            total = ops.count(name, include_archived=q.include_archived)
            if total == 0 and ops.count(name, include_archived=True) == 0:
                ops.get(name)  # raises the not-found error that lists the known names
            return Page(items=[asset_view(state, a) for a in items], total=total,
                        limit=q.limit, offset=q.offset).model_dump()

        self.send(await self.call(page))


def _version(version: str) -> str | None:
    return None if version == "latest" else version


class AssetVersionHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, kind: str, name: str, version: str) -> None:
        state = self.state

        def one() -> dict[str, Any]:
            asset = self.ops(kind).get(name, _version(version))
            return asset_view(state, asset, describe=True)

        self.send(await self.call(one))

    @tornado.web.authenticated
    @authorized
    async def patch(self, kind: str, name: str, version: str) -> None:
        body = parse_body(AssetPatch, self.request.body)
        state = self.state

        def change() -> dict[str, Any]:
            ops = self.ops(kind)
            concrete = ops.get(name, _version(version)).version
            asset = ops.update(name, concrete, description=body.description, tags=body.tags,
                               remove_tags=body.remove_tags)
            return asset_view(state, asset)

        self.send(await self.call(change))


class AssetActionHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, kind: str, name: str, version: str, action: str) -> None:
        state = self.state

        def act() -> dict[str, Any]:
            ops = self.ops(kind)
            concrete = version if version != "latest" else ops.get(name).version
            getattr(ops, action)(name, concrete)  # archive | restore (the route allows no other)
            return asset_view(state, ops.get(name, concrete))

        self.send(await self.call(act))


class BuildHandler(MlwsHandler):
    """``GET``: the build state (live log while this server builds it); ``POST``: start it."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        q = parse_query(BuildQuery, self.request.query_arguments)
        state = self.state

        def current() -> dict[str, Any]:
            envs = state.workspace.environments
            env = envs.get(name, _version(version))
            run = state.builds.get(env.env_hash, q.builder)
            record = envs.build_record(env, q.builder)
            if run is not None and (not run.done or record is None
                                    or (run.error and record["status"] != "failed")):
                return Build(**run.view()).model_dump(mode="json")
            if record is not None:
                return Build(**{**record, "log": record.get("log") or ""}).model_dump(mode="json")
            found = envs.lookup(env, q.builder)  # built elsewhere (another workspace, the CLI)
            if found is not None:
                result = found.to_dict()
                result.pop("log", None)
                return Build(status="cached", env_hash=env.env_hash, builder=q.builder,
                             environment=env.ref, result=result).model_dump(mode="json")
            return Build(status="not_built", env_hash=env.env_hash, builder=q.builder,
                         environment=env.ref).model_dump(mode="json")

        self.send(await self.call(current))

    @tornado.web.authenticated
    @authorized
    async def post(self, name: str, version: str) -> None:
        q = parse_query(BuildQuery, self.request.query_arguments)
        state = self.state

        def start() -> dict[str, Any]:
            envs = state.workspace.environments
            env = envs.get(name, _version(version))
            running = state.builds.get(env.env_hash, q.builder)
            if running is not None and not running.done:
                return Build(**running.view()).model_dump(mode="json")
            found = envs.lookup(env, q.builder)  # Docker down: 503 now, not a failed build later
            if found is not None:
                result = found.to_dict()
                result.pop("log", None)
                return Build(status="cached", env_hash=env.env_hash, builder=q.builder,
                             environment=env.ref, result=result).model_dump(mode="json")
            run = state.builds.start(
                env.env_hash, q.builder, env.ref,
                lambda log: envs.build(env, builder=q.builder, log=log))
            return Build(**run.view()).model_dump(mode="json")

        self.send(await self.call(start), status=202)


class JobsHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        q = parse_query(JobListQuery, self.request.query_arguments)
        statuses = q.statuses()

        def page() -> dict[str, Any]:
            ws = self.state.workspace
            items = ws.jobs.list(status=statuses, experiment=q.experiment, parent_id=q.parent,
                                 limit=q.limit, offset=q.offset, created_by=q.created_by)
            return Page(items=[j.public_dict() for j in items],
                        total=_job_total(ws, q, statuses, len(items)),
                        limit=q.limit, offset=q.offset).model_dump()

        self.send(await self.call(page))

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = parse_body(NotebookSubmission, self.request.body)
        state = self.state
        notebook = self.under_root(body.notebook, "notebook")
        code = self.under_root(body.code, "code") if body.code else None
        request = NotebookJobRequest.create(
            notebook=notebook, code=code,
            parameters={**body.parameters,
                        **_literals("literal_parameters", body.literal_parameters)},
            inputs=confine_inputs(state.root_dir,
                                  {**body.inputs, **_literals("literal_inputs", body.literal_inputs)}),
            outputs={name: {"type": "uri_folder"} for name in body.outputs},
            environment=body.environment, compute=body.compute,
            display_name=body.display_name, experiment=body.experiment, timeout=body.timeout)

        def submit() -> Any:
            return state.workspace.jobs.submit(request)

        job = await self.call(submit)
        self.set_header("Location", url_path_join(self.base_url, API_PATH, "jobs", job.id))
        self.send(job.public_dict(), status=201)


def _literals(field: str, texts: dict[str, str]) -> dict[str, Any]:
    """Each text read by the one literal parser; a refused value's error names its field and
    name in ``details`` (``{"field": "literal_parameters", "name": "lr"}``), so a form can show
    it beside the input."""
    values: dict[str, Any] = {}
    for name, text in texts.items():
        try:
            values[name] = parse_literal(text, name=name)
        except ValidationError as exc:
            exc.details.update(field=field, name=name)
            raise
    return values


def _job_total(ws: Any, q: JobListQuery, statuses: list[str] | None, n: int) -> int:
    """The number of jobs the listing pages through.

    A short page tells it at once; otherwise the store counts with the listing's filters.
    """
    if n < q.limit and (n or q.offset == 0):
        return q.offset + n
    return ws.jobs.count(status=statuses, experiment=q.experiment, parent_id=q.parent,
                         created_by=q.created_by)


class JobHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        ws = self.state.workspace

        def detail() -> dict[str, Any]:
            data: dict[str, Any] = ws.jobs.detail(job_id).public_dict()
            if data.get("type") == "sweep":  # its trials table, sorted by the objective
                from jupyter_mlws.server.sweep_handlers import sweep_detail

                data["sweep"] = sweep_detail(ws, data["id"])
            return data

        self.send(await self.call(detail))


class JobLogsHandler(MlwsHandler):
    """The preparation log then what the job printed, as one text addressed by byte offset."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        q = parse_query(LogQuery, self.request.query_arguments)

        def chunk() -> dict[str, Any]:
            jobs = self.state.workspace.jobs
            if q.tail is not None:
                return LogChunk(**jobs.read_log_tail(job_id, q.tail)).model_dump()
            return LogChunk(**jobs.read_log(job_id, q.offset, max_bytes=LOG_CHUNK_BYTES)
                            ).model_dump()

        self.send(await self.call(chunk))


class JobMetricsHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        def metrics() -> dict[str, Any]:
            jobs = self.state.workspace.jobs
            return {"items": [m.model_dump(mode="json")
                              for m in jobs.metrics(jobs.get(job_id).id)]}

        self.send(await self.call(metrics))


class JobCancelHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        state = self.state
        job = await self.call(lambda: state.workspace.jobs.cancel(job_id))
        self.send(job.public_dict())


class JobOutputNotebookHandler(MlwsHandler):
    """Copies the output notebook under the server root, where JupyterLab can open it."""

    @tornado.web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        state = self.state

        def copy() -> dict[str, Any]:
            jobs = state.workspace.jobs
            job = jobs.get(job_id)
            source = jobs.paths(job.id).notebook_out
            if not source.is_file():
                raise NotFoundError(
                    f"Job {job.id} has no output notebook"
                    + (" (it is not a notebook job)." if job.type != "notebook"
                       else f" yet (it is {job.status})."),
                    hint="The output notebook appears once the job starts running.")
            folder = resolve_under_root(state.root_dir, state.config.outputs_dir,
                                        "outputs folder")
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{job.id}.ipynb"
            copy_exclusively(source, target, jobs.paths(job.id).root)
            return {"path": target.relative_to(state.root_dir).as_posix()}

        self.send(await self.call(copy))


def copy_exclusively(source: Path, target: Path, job_root: Path) -> None:
    """Copy ``source`` (a file the job under ``job_root`` wrote) to ``target`` through a new temp
    file of a random name in its folder (created with O_EXCL), then rename it in place; never
    reads or writes through a symbolic link."""
    if target.is_symlink():
        raise UnsafePathError(f"{target.name} in the outputs folder is a symbolic link; it is "
                              "not overwritten.", hint="Remove the link and ask again.")
    from jupyter_mlws.jobs.safe_files import open_job_file

    try:
        reader = open_job_file(source, job_root)
    except OSError as exc:
        raise UnsafePathError(f"The job's output notebook cannot be read safely ({exc.strerror}).",
                              hint="It must be a regular file in the job's folder.") from None
    with reader:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as writer:
                shutil.copyfileobj(reader, writer)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class NotebookParametersHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        q = parse_query(NotebookQuery, self.request.query_arguments)
        path = self.under_root(q.path, "notebook")

        def inspect() -> dict[str, Any]:
            from jupyter_mlws.jobs.operations import notebook_parameters

            if not path.is_file():
                raise NotFoundError(f"There is no notebook {q.path!r} in the server's root "
                                    "folder.")
            try:
                found = notebook_parameters(path)
            except MlwsError:
                raise
            except Exception as exc:  # papermill/nbformat reading a user's file
                raise SpecError(f"not a notebook papermill can read ({type(exc).__name__}: "
                                f"{exc})", file=q.path) from None
            return {"parameters": [NotebookParameter.from_papermill(name, info).model_dump()
                                   for name, info in found.items()]}

        self.send(await self.call(inspect))


class NotFoundHandler(MlwsHandler):
    """Anything else under ``mlws/api/``: a JSON 404 (after authentication)."""

    def _missing(self) -> None:
        raise NotFoundError(f"There is no route {self.request.method} {self.request.path}.",
                            hint="See the API contract (openapi.yaml).")

    @tornado.web.authenticated
    @authorized
    def get(self, *args: str | None) -> None:
        self._missing()

    @tornado.web.authenticated
    @authorized
    def post(self, *args: str | None) -> None:
        self._missing()

    @tornado.web.authenticated
    @authorized
    def put(self, *args: str | None) -> None:
        self._missing()

    @tornado.web.authenticated
    @authorized
    def patch(self, *args: str | None) -> None:
        self._missing()

    @tornado.web.authenticated
    @authorized
    def delete(self, *args: str | None) -> None:
        self._missing()


_SEG = r"[^/]+"


def routes(base_url: str) -> list[tuple[str, type[MlwsHandler]]]:
    """The URL patterns of the API under ``{base_url}mlws/api``."""
    from jupyter_mlws.server.endpoint_handlers import endpoint_routes
    from jupyter_mlws.server.env_handlers import env_routes
    from jupyter_mlws.server.sweep_handlers import sweep_routes

    table: list[tuple[str, type[MlwsHandler]]] = [
        (r"/workspace", WorkspaceHandler),
        (rf"/assets/(?P<kind>{_SEG})", AssetListHandler),
        (rf"/assets/(?P<kind>{_SEG})/(?P<name>{_SEG})/versions", AssetVersionsHandler),
        (rf"/assets/(?P<kind>{_SEG})/(?P<name>{_SEG})/versions/(?P<version>{_SEG})",
         AssetVersionHandler),
        (rf"/assets/(?P<kind>{_SEG})/(?P<name>{_SEG})/versions/(?P<version>{_SEG})"
         r"/(?P<action>archive|restore)", AssetActionHandler),
        (rf"/environments/(?P<name>{_SEG})/versions/(?P<version>{_SEG})/build", BuildHandler),
        (r"/jobs", JobsHandler),
        (rf"/jobs/(?P<job_id>{_SEG})", JobHandler),
        (rf"/jobs/(?P<job_id>{_SEG})/logs", JobLogsHandler),
        (rf"/jobs/(?P<job_id>{_SEG})/metrics", JobMetricsHandler),
        (rf"/jobs/(?P<job_id>{_SEG})/cancel", JobCancelHandler),
        (rf"/jobs/(?P<job_id>{_SEG})/output-notebook", JobOutputNotebookHandler),
        (r"/notebooks/parameters", NotebookParametersHandler),
        *sweep_routes(),
        *endpoint_routes(),
        *env_routes(),
        (r"(/.*)?", NotFoundHandler),
    ]
    prefix = url_path_join(base_url, API_PATH)
    return [(prefix + pattern, handler) for pattern, handler in table]
