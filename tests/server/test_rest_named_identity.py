"""A named Jupyter identity (as JupyterHub or an authenticating proxy gives) is what a REST job
records as ``created_by``; ``?created_by=me`` lists only that user's jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from traitlets.config import Config

from jupyter_mlws import Workspace
from tests.helpers import make_notebook

USER_HEADER = "X-Test-User"


class HeaderIdentityProvider(IdentityProvider):
    """Token authentication as usual; the user is named by a request header (test only)."""

    async def get_user(self, handler: Any) -> User | None:
        user = await super()._get_user(handler)
        if user is None:
            return None
        name = handler.request.headers.get(USER_HEADER, "")
        return User(username=name, name=name) if name else user


@pytest.fixture
def jp_server_config(workspace_dir: Path) -> Config:
    return Config({
        "ServerApp": {"jpserver_extensions": {"jupyter_mlws": True},
                      "identity_provider_class": HeaderIdentityProvider},
        "MlwsServerConfig": {"workspace_path": str(workspace_dir)},
    })


async def test_jobs_record_the_named_jupyter_user(api: Any, ws: Workspace,
                                                  jp_root_dir: Path) -> None:
    make_notebook(jp_root_dir / "hello.ipynb", 'print("hi")\n')
    ids = {}
    for user in ("ada", "grace"):
        # a client cannot name the creator: the field is refused
        reply = await api.post("/jobs", body={"notebook": "hello.ipynb", "created_by": "mallory"},
                               headers={USER_HEADER: user})
        assert reply.code == 400 and "created_by" in reply.json["message"], reply.body
        reply = await api.post("/jobs", body={"notebook": "hello.ipynb"},
                               headers={USER_HEADER: user})
        assert reply.code == 201, reply.body
        assert reply.json["created_by"] == user
        ids[user] = reply.json["id"]

    for user in ("ada", "grace"):
        mine = (await api.get("/jobs", params={"created_by": "me"},
                              headers={USER_HEADER: user})).json
        assert [j["id"] for j in mine["items"]] == [ids[user]]
        assert ws.jobs.wait(ids[user], timeout=120).created_by == user
    assert {j.created_by for j in ws.jobs.list()} == {"ada", "grace"}
