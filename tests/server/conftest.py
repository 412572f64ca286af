"""A real Jupyter server with the jupyter_mlws extension, on a throwaway workspace.

Every response the tests get is checked against ``openapi.yaml`` (status, headers and body) by
:class:`Api`, so the contract and the server cannot drift apart.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jupyter_server.utils import url_path_join
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the jp_* fixtures and their hooks
from traitlets.config import Config

import jupyter_mlws.server
from jupyter_mlws import Workspace
from jupyter_mlws.server import SETTINGS_KEY

CONTRACT = Path(jupyter_mlws.server.__file__).parent / "openapi.yaml"
API_PREFIX = "/mlws/api"
ERROR_SCHEMA = OAS30Validator(yaml.safe_load(CONTRACT.read_text())["components"]["schemas"]["Error"])


@pytest.fixture(scope="session")
def contract() -> OpenAPI:
    return OpenAPI.from_file_path(str(CONTRACT))


@pytest.fixture
def workspace_dir(tmp_path: Path, template_workspace: Path) -> Path:
    """A copy of the session's initialized workspace (tests/conftest.py)."""
    target = tmp_path / "project" / ".mlws"
    shutil.copytree(template_workspace, target)
    return target


@pytest.fixture
def jp_server_config(workspace_dir: Path) -> Config:
    return Config({
        "ServerApp": {"jpserver_extensions": {"jupyter_mlws": True}},
        "MlwsServerConfig": {"workspace_path": str(workspace_dir)},
    })


@pytest.fixture
def ws(workspace_dir: Path, jp_serverapp: Any) -> Iterator[Workspace]:
    """The served workspace, opened beside the server (as the CLI would be); its unfinished jobs
    are canceled when the test ends, and the server's state is closed."""
    workspace = Workspace.open(workspace_dir)
    yield workspace
    for job in workspace.jobs.list(status=["Queued", "Preparing", "Running"],
                                   include_children=True):
        workspace.jobs.cancel(job.id)
    for job in workspace.jobs.list(include_children=True, limit=None):
        with contextlib.suppress(TimeoutError):
            workspace.jobs.wait(job.id, timeout=30)
    workspace.close()
    state = jp_serverapp.web_app.settings.get(SETTINGS_KEY)
    if state is not None:
        state.close()


@dataclass
class Reply:
    code: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Calls ``/mlws/api/...`` and validates every answer against the contract."""

    def __init__(self, fetch: Any, client: Any, base_url: str, contract: OpenAPI) -> None:
        self._fetch = fetch
        self._client = client
        self.base_url = base_url
        self._contract = contract

    async def call(self, method: str, path: str, *, params: Any = None, body: Any = None,
                   raw: bytes | None = None, headers: dict[str, str] | None = None,
                   auth: bool = True) -> Reply:
        """``path`` is relative to the API (``/jobs``); ``body`` is sent as JSON."""
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None
            else (b"" if method in ("POST", "PATCH", "PUT") else None))
        kwargs = {"method": method, "body": data, "raise_error": False,
                  "allow_nonstandard_methods": True}
        if auth:
            resp = await self._fetch(API_PREFIX.lstrip("/") + path, params=params,
                                     headers=dict(headers or {}), **kwargs)
        else:  # what a browser without the token or cookie sends
            url = url_path_join(self.base_url, API_PREFIX.lstrip("/")) + urllib.parse.quote(path)
            if params:
                url += "?" + urllib.parse.urlencode(params)
            resp = await self._client.fetch(url, headers=dict(headers or {}), **kwargs)
        reply = Reply(resp.code, resp.headers, resp.body or b"")
        self.check(method, path, reply)
        return reply

    def check(self, method: str, path: str, reply: Reply) -> None:
        """The answer is what ``openapi.yaml`` says this operation answers."""
        request = MockRequest("http://localhost", method, API_PREFIX + urllib.parse.quote(path))
        ctype = reply.headers.get("Content-Type", "")
        assert ctype.startswith("application/json"), (reply.code, ctype, reply.body[:200])
        response = MockResponse(reply.body, status_code=reply.code,
                                headers=dict(reply.headers.get_all()),
                                content_type="application/json")
        try:
            self._contract.validate_response(request, response)
        except (PathNotFound, OperationNotFound):
            # a route or method the contract does not have: the answer is still an Error
            assert reply.code in (403, 404, 405), (method, path, reply.code)
            ERROR_SCHEMA.validate(reply.json)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.call("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Reply:
        return await self.call("PATCH", path, **kw)


@pytest.fixture
def api(jp_fetch: Any, http_server_client: Any, jp_base_url: str, contract: OpenAPI,
        ws: Workspace) -> Api:
    return Api(jp_fetch, http_server_client, jp_base_url, contract)
