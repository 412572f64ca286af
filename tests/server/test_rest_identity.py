"""Through REST, ``created_by`` is the Jupyter user who sent the request, not the server's OS
user; ``?created_by=me`` means that Jupyter user (default token identity)."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.team.identity import current_user
from tests.helpers import make_notebook

NOTEBOOK = 'print("hi")\n'


async def test_a_rest_job_records_the_jupyter_user_and_me_means_that_user(
        api: Any, ws: Workspace, jp_root_dir: Path, jp_fetch: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    make_notebook(jp_root_dir / "hello.ipynb", NOTEBOOK)
    reply = await api.post("/jobs", body={"notebook": "hello.ipynb"})
    assert reply.code == 201, reply.body
    job = reply.json
    cookies = SimpleCookie()
    for header in reply.headers.get_list("Set-Cookie"):
        cookies.load(header)
    login = next(k for k in cookies if k.startswith("username-"))
    cookie = f"{login}={cookies[login].value}"

    # who Jupyter says the cookie's user is
    me = await jp_fetch("api", "me", headers={"Cookie": cookie})
    username = json.loads(me.body)["identity"]["username"]
    assert username and job["created_by"] == username
    assert job["created_by"] != current_user()  # not the server process's OS user

    # a job of someone else in the same workspace (as the CLI on another machine would add)
    monkeypatch.setenv("MLWS_USER", "someone-else")
    other = ws.jobs.submit_command("echo other")
    assert ws.jobs.get(other.id).created_by == "someone-else"

    mine = await api.get("/jobs", params={"created_by": "me"}, headers={"Cookie": cookie},
                         auth=False)
    assert mine.code == 200
    assert [j["id"] for j in mine.json["items"]] == [job["id"]] and mine.json["total"] == 1
    everyone = (await api.get("/jobs")).json
    assert {j["id"] for j in everyone["items"]} == {job["id"], other.id}
    assert ws.jobs.wait(job["id"], timeout=120).created_by == username
