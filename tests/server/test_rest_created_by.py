"""``GET /jobs?created_by=``: one user's jobs, each with its creator and host."""

from __future__ import annotations

import socket

import pytest

from jupyter_mlws import Workspace
from tests.server.conftest import Api


async def test_job_list_filters_by_creator_and_shows_the_host(
    api: Api, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = {}
    for user in ("alice", "bob@lab-7"):
        monkeypatch.setenv("MLWS_USER", user)
        ids[user] = ws.jobs.submit_command("echo hi").id
        assert ws.jobs.wait(ids[user], timeout=60).status == "Completed"

    reply = (await api.get("/jobs", params={"created_by": "bob"})).json
    assert [j["id"] for j in reply["items"]] == [ids["bob@lab-7"]] and reply["total"] == 1
    item = reply["items"][0]
    assert (item["created_by"], item["host"]) == ("bob@lab-7", socket.gethostname())
    reply = (await api.get("/jobs", params={"created_by": "alice", "limit": 1})).json
    assert [j["id"] for j in reply["items"]] == [ids["alice"]] and reply["total"] == 1
    both = (await api.get("/jobs")).json
    assert {j["id"] for j in both["items"]} == set(ids.values())
