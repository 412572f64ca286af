"""Environments over time through a real Jupyter server and a real Docker engine: the outdated
list (an environment built on a base whose tag has moved since) and its rebuild in the
background, followed until it ends; a bad name is a typed 404.

The base moved is a throwaway copy of the default offline base (the ``base_copy`` fixture of
tests/envtime); "patching" it is a one-label
image on top (what `mlws image patch` leaves: a new id under the tag, labelled with the date),
which costs no package download.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest

from jupyter_mlws import Workspace
from tests.envtime import test_patch_rebuild
from tests.server.test_rest import error, until

pytestmark = pytest.mark.docker

PATCHED_AT = "2026-11-30T06:00:00+00:00"
base_copy = test_patch_rebuild.base_copy  # a throwaway copy of the offline base (a fixture)


def move_base(docker_client: Any, base: str) -> str:
    """A new image id under ``base``'s tag, labelled as a patch; its id."""
    dockerfile = f"FROM {base}\nLABEL org.mlws.patched={PATCHED_AT}\n".encode()
    image, _logs = docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=base, rm=True)
    return str(image.id)


async def test_outdated_list_and_rebuild(api: Any, ws: Workspace, docker_client: Any,
                                         base_copy: str) -> None:
    env = ws.environments.create("svc-env", image=base_copy, pip_requirements=["six"])
    first = ws.environments.build(env)
    assert (await api.get("/environments/outdated")).json == {"items": []}
    new_base = move_base(docker_client, base_copy)

    listed = await api.get("/environments/outdated")
    assert listed.code == 200
    (row,) = listed.json["items"]
    assert row["environment"] == "svc-env:1" and row["base_image"] == base_copy
    assert row["base_now"] == new_base and row["built_on"] != new_base
    assert row["base_patched_at"] == PATCHED_AT and row["deployments"] == []

    started = await api.post("/environments/svc-env/versions/1/rebuild")
    assert started.code == 202, started.body
    assert started.headers["Location"].endswith("/environments/svc-env/versions/1/rebuild")
    assert started.json["environment"] == "svc-env:1" and started.json["redeploy"] is False

    async def finished() -> Any:
        reply = await api.get("/environments/svc-env/versions/latest/rebuild")
        assert reply.code == 200
        return reply.json if reply.json["status"] != "running" else None

    done = await until(finished, timeout=300)
    assert done["status"] == "succeeded", done
    assert done["result"]["rebuilt"] and done["result"]["from_lock"]
    assert done["result"]["base_image_id"] == new_base
    assert done["result"]["image_id"] != first.image_id and done["finished_at"]
    assert (await api.get("/environments/outdated")).json == {"items": []}
    ws.builder("docker").remove(done["result"]["image_id"], force=True)


async def test_bad_name_is_a_typed_404_and_a_failed_rebuild_a_typed_error(
        api: Any, ws: Workspace, docker_client: Any) -> None:
    body = error(await api.post("/environments/no-such-env/versions/1/rebuild"), 404)
    assert "no-such-env" in body["message"] and body.get("hint")
    assert "Traceback" not in str(body)
    missing = f"mlws/no-such-base-{uuid.uuid4().hex[:8]}:1"
    ws.environments.create("orphan", image=missing)
    body = error(await api.get("/environments/orphan/versions/1/rebuild"), 404, "not_found")
    assert "no rebuild" in body["message"]
    error(await api.post("/environments/orphan/versions/1/rebuild",
                         params={"redeploy": "maybe"}), 400)

    # a base that exists nowhere (no registry answers): the rebuild fails with a typed error
    assert (await api.post("/environments/orphan/versions/1/rebuild")).code == 202

    async def finished() -> Any:
        reply = await api.get("/environments/orphan/versions/1/rebuild")
        return reply.json if reply.json["status"] != "running" else None

    done = await until(finished, timeout=180)
    assert done["status"] == "failed" and done["result"] is None, done
    assert done["error"]["error"] != "internal_error", done["error"]
    assert missing in done["error"]["message"] and done["error"].get("hint"), done["error"]
    assert "Traceback" not in str(done["error"])


ROUTES = [
    ("GET", "/environments/outdated"),
    ("POST", "/environments/orphan/versions/1/rebuild"),
    ("GET", "/environments/orphan/versions/1/rebuild"),
]


async def test_the_routes_answer_403_without_the_token_and_are_documented(
        api: Any, ws: Workspace) -> None:
    import re

    import yaml

    from jupyter_mlws.server.env_handlers import env_routes
    from tests.server.conftest import CONTRACT

    ws.environments.create("orphan", image="mlws/no-such-base:1")
    for method, path in ROUTES:
        for headers in ({}, {"Authorization": "token not-the-token"}):
            reply = await api.call(method, path, headers=headers, auth=False)
            assert error(reply, 403, "forbidden"), (method, path)
    error(await api.get("/environments/orphan/versions/1/rebuild"), 404)  # nothing started
    paths = yaml.safe_load(CONTRACT.read_text())["paths"]
    served = {re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", p) for p, _h in env_routes()}
    documented = {(m.upper(), p) for p in served for m in paths[p]}
    assert documented == {(m, p.replace("orphan", "{name}").replace("/1/", "/{version}/"))
                          for m, p in ROUTES}
