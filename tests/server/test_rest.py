"""The REST API through a real Jupyter server: every route, its errors, its authentication.

Each answer is validated against ``openapi.yaml`` by the ``api`` fixture. Jobs are real:
papermill runs the notebooks written into the server's root folder.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_mlws import Workspace
from tests.helpers import make_notebook

Api = Any  # the ``api`` fixture of conftest.py: calls the API, validates against openapi.yaml
Reply = Any

TRAIN_PARAMS = 'epochs = 2\nlr = 0.1\nname = "demo"  # what to call the model\n'
TRAIN = """
import time
from jupyter_mlws import run
for i in range(epochs):
    print(f"epoch {i} lr={lr} \u2713", flush=True)
    run.log_metric("loss", 1.0 / (i + 1), step=i)
    time.sleep(0.5)
(run.output_path("model") / "weights.txt").write_text(name)
"""


async def until(check: Callable[[], Any], timeout: float = 90.0, every: float = 0.15) -> Any:
    """Poll the async ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(every)


def error(reply: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.code == status, (reply.code, reply.body[:500])
    body: dict[str, Any] = reply.json
    if code is not None:
        assert body["error"] == code, body
    assert body["message"]
    return body


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    f = tmp_path / "weights.bin"
    f.write_bytes(b"weights")
    return f


# --- authentication -----------------------------------------------------------------------------

ROUTES = [
    ("GET", "/workspace"),
    ("GET", "/assets/models"),
    ("GET", "/assets/models/m/versions"),
    ("GET", "/assets/models/m/versions/1"),
    ("PATCH", "/assets/models/m/versions/1"),
    ("POST", "/assets/models/m/versions/1/archive"),
    ("POST", "/assets/models/m/versions/1/restore"),
    ("GET", "/environments/MLWS-python-3.11-minimal/versions/1/build"),
    ("POST", "/environments/MLWS-python-3.11-minimal/versions/1/build"),
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", "/jobs/some_job_1"),
    ("GET", "/jobs/some_job_1/logs"),
    ("GET", "/jobs/some_job_1/metrics"),
    ("POST", "/jobs/some_job_1/cancel"),
    ("POST", "/jobs/some_job_1/output-notebook"),
    ("GET", "/notebooks/parameters"),
    ("POST", "/sweeps"),
    ("GET", "/no/such/route"),
]


async def test_every_route_answers_403_without_the_token(api: Api, ws: Workspace,
                                                         model_file: Path) -> None:
    ws.models.create("m", model_file, description="before")
    for method, path in ROUTES:
        body = {"description": "changed"} if method == "PATCH" else None
        for headers in ({}, {"Authorization": "token not-the-token"}):
            reply = await api.call(method, path, body=body, headers=headers, auth=False)
            assert error(reply, 403, "forbidden"), (method, path)
    # nothing happened
    model = ws.models.get("m", 1)
    assert model.description == "before" and not model.archived
    assert ws.jobs.list() == []


async def test_a_cookie_session_needs_the_xsrf_token_to_write(
        api: Api, http_server_client: Any, jp_base_url: str, ws: Workspace,
        model_file: Path) -> None:
    ws.models.create("m", model_file)
    with_token = await api.get("/workspace")
    cookies = SimpleCookie()
    for header in with_token.headers.get_list("Set-Cookie"):
        cookies.load(header)
    login = next(k for k in cookies if k.startswith("username-"))
    page = await http_server_client.fetch(jp_base_url + "login", raise_error=False)
    for header in page.headers.get_list("Set-Cookie"):
        cookies.load(header)
    xsrf = cookies["_xsrf"].value
    cookie = f"{login}={cookies[login].value}; _xsrf={xsrf}"

    reply = await api.get("/workspace", headers={"Cookie": cookie}, auth=False)
    assert reply.code == 200  # the cookie alone authenticates a read
    path = "/assets/models/m/versions/1/archive"
    reply = await api.post(path, headers={"Cookie": cookie}, auth=False)
    assert "_xsrf" in error(reply, 403, "forbidden")["message"]
    assert not ws.models.get("m", 1).archived
    reply = await api.post(path, headers={"Cookie": cookie, "X-XSRFToken": xsrf}, auth=False)
    assert reply.code == 200 and reply.json["archived"] is True


# --- workspace and unknown routes ---------------------------------------------------------------


async def test_workspace_info_and_unknown_routes(api: Api, ws: Workspace) -> None:
    reply = await api.get("/workspace")
    assert reply.code == 200
    info = reply.json
    assert Path(info["path"]) == ws.path
    assert info["counts"]["environment"] == 2 and info["counts"]["compute"] == 1
    assert "There is no route" in error(await api.get("/nothing/here"), 404, "not_found")["message"]
    error(await api.get(""), 404, "not_found")
    error(await api.call("DELETE", "/workspace"), 405, "method_not_allowed")


# --- assets ---------------------------------------------------------------------------------------


async def test_asset_lists_page_filter_by_name_and_tags(api: Api, ws: Workspace,
                                                        model_file: Path) -> None:
    tags = {"alpha_one": {"team": "vision", "stage": "prod"}, "Alpha-two": {"team": "vision"},
            "beta": {"team": "nlp", "stage": "prod"}, "beta.ok": {}, "delta": {"stage": "dev"}}
    for name, t in tags.items():
        ws.models.create(name, model_file, tags=t)
    ws.models.create("beta", model_file, tags={"team": "nlp"})  # its latest has no stage

    async def names(**params: Any) -> tuple[list[str], int]:
        reply = await api.get("/assets/models", params=params)
        assert reply.code == 200
        page = reply.json
        assert page["limit"] == int(params.get("limit", 50))
        assert page["offset"] == int(params.get("offset", 0))
        return [i["name"] for i in page["items"]], page["total"]

    everything = sorted(tags)
    assert await names() == (everything, 5)
    assert await names(limit=2) == (everything[:2], 5)
    assert await names(limit=2, offset=4) == (everything[4:], 5)
    assert await names(offset=10) == ([], 5)
    assert await names(q="ALPHA") == (["Alpha-two", "alpha_one"], 2)
    assert await names(q="a_o") == (["alpha_one"], 1)  # '_' is no LIKE wildcard ('a.o')
    assert await names(q="BETA") == (["beta", "beta.ok"], 2)
    assert await names(q="alpha", limit=1, offset=1) == (["alpha_one"], 2)
    assert await names(tag="team") == (["Alpha-two", "alpha_one", "beta"], 3)
    assert await names(tag="team=vision") == (["Alpha-two", "alpha_one"], 2)
    assert await names(tag="stage=prod") == (["alpha_one"], 1)  # beta's latest lost the tag
    reply = await api.get("/assets/models", params=[("tag", "team"), ("tag", "stage")])
    assert [i["name"] for i in reply.json["items"]] == ["alpha_one"] and reply.json["total"] == 1

    item = (await api.get("/assets/models", params={"q": "delta"})).json["items"][0]
    assert item["version"] == "1" and item["tags"] == {"stage": "dev"} and item["size"] == 7

    ws.models.archive("delta")
    assert await names(q="delta") == ([], 0)
    assert await names(q="delta", include_archived="true") == (["delta"], 1)

    for kind in ("environments", "data", "components", "datastores", "computes"):
        assert (await api.get(f"/assets/{kind}")).code == 200
    assert (await names(limit=500))[1] == 4  # delta is archived

    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"},
                {"include_archived": "perhaps"}, {"tag": "=x"}):
        error(await api.get("/assets/models", params=bad), 400, "invalid")
    body = error(await api.get("/assets/widgets"), 404, "not_found")
    assert "environments" in body["hint"]


async def test_total_is_what_paging_through_gives(api: Api, ws: Workspace,
                                                  model_file: Path) -> None:
    for i in range(7):
        model_file.write_bytes(b"x" * (i + 1))
        ws.models.create(f"m{i % 3}", model_file, tags={"odd": str(i % 2)})
    ws.models.archive("m1")  # every version
    ws.models.archive("m2", 2)  # only its latest (m2 has 1, 2): latest is 1 again
    ws.environments.register_anonymous({"pip_requirements": ["six"]})  # hidden from lists
    cases = [("models", {}), ("models", {"include_archived": "true"}),
             ("models", {"tag": "odd=1"}), ("models", {"tag": "odd=0", "q": "M2"}),
             ("models", {"q": "m", "include_archived": "true", "tag": "odd"}),
             ("environments", {}), ("models/m0/versions", {}),
             ("models/m2/versions", {"include_archived": "true"})]
    for path, params in cases:
        seen: list[str] = []
        offset, total = 0, None
        while True:
            page = (await api.get(f"/assets/{path}",
                                  params={**params, "limit": 2, "offset": offset})).json
            assert total in (None, page["total"])
            total = page["total"]
            seen += [f"{i['name']}:{i['version']}" for i in page["items"]]
            if len(page["items"]) < 2:
                break
            offset += 2
        assert len(seen) == len(set(seen)) == total, (path, params, seen, total)
    first = (await api.get("/assets/models", params={"include_archived": "true"})).json["items"]
    assert [f"{i['name']}:{i['version']}" for i in first] == ["m0:3", "m1:2", "m2:2"]
    latest = (await api.get("/assets/models")).json["items"]
    assert [f"{i['name']}:{i['version']}" for i in latest] == ["m0:3", "m2:1"]
    assert [e["name"] for e in (await api.get("/assets/environments")).json["items"]] == [
        "MLWS-python-3.11-minimal", "MLWS-sklearn-1.9"]


async def test_versions_of_a_name_and_one_version(api: Api, ws: Workspace,
                                                  model_file: Path) -> None:
    for i in range(5):
        model_file.write_bytes(b"w" * (i + 1))
        ws.models.create("m", model_file)
    reply = await api.get("/assets/models/m/versions", params={"limit": 2, "offset": 1})
    assert [i["version"] for i in reply.json["items"]] == ["4", "3"]
    assert reply.json["total"] == 5
    assert (await api.get("/assets/models/m/versions/latest")).json["version"] == "5"
    three = (await api.get("/assets/models/m/versions/3")).json
    assert three["size"] == 3 and three["kind"] == "model" and three["spec"]["artifact"]

    ws.models.archive("m", 5)
    reply = await api.get("/assets/models/m/versions")
    assert [i["version"] for i in reply.json["items"]] == ["4", "3", "2", "1"]
    reply = await api.get("/assets/models/m/versions", params={"include_archived": "1"})
    assert reply.json["total"] == 5 and reply.json["items"][0]["archived"] is True
    assert (await api.get("/assets/models/m/versions/latest")).json["version"] == "4"

    env = (await api.get("/assets/environments/MLWS-python-3.11-minimal/versions/1")).json
    assert env["hash"] and env["image"].startswith("mlws/mlws_")
    assert isinstance(env["cached"], bool) and "docker_build" in env and "venv_build" in env

    body = error(await api.get("/assets/models/nope/versions"), 404, "asset_not_found")
    assert "m" in body["hint"]  # the known names
    error(await api.get("/assets/models/m/versions/99"), 404, "asset_not_found")
    error(await api.get("/assets/models/nope/versions/1"), 404, "asset_not_found")
    error(await api.get("/assets/models/m/versions", params={"limit": 1000}), 400)
    error(await api.get("/assets/models/bad name!/versions"), 400, "invalid_name")


async def test_patch_archive_and_restore(api: Api, ws: Workspace, model_file: Path) -> None:
    ws.models.create("m", model_file, tags={"a": "1", "b": "2"})
    ws.models.create("m", model_file.parent / "weights.bin", version="2")
    reply = await api.patch("/assets/models/m/versions/1",
                            body={"description": "first", "tags": {"c": 3}, "remove_tags": ["a"]})
    assert reply.code == 200
    assert reply.json["description"] == "first" and reply.json["tags"] == {"b": "2", "c": "3"}
    assert ws.models.get("m", 1).tags == {"b": "2", "c": "3"}
    reply = await api.patch("/assets/models/m/versions/latest", body={"description": "second"})
    assert reply.json["version"] == "2" and reply.json["description"] == "second"

    reply = await api.post("/assets/models/m/versions/2/archive")
    assert reply.code == 200 and reply.json["archived"] is True and reply.json["version"] == "2"
    assert ws.models.get("m").version == "1"
    reply = await api.post("/assets/models/m/versions/2/restore")
    assert reply.json["archived"] is False and ws.models.get("m").version == "2"
    reply = await api.post("/assets/models/m/versions/latest/archive")
    assert reply.json["version"] == "2" and reply.json["archived"] is True

    error(await api.patch("/assets/models/m/versions/1", body={"descripton": "typo"}), 400,
          "invalid")
    error(await api.patch("/assets/models/m/versions/1", raw=b"{not json"), 400, "invalid")
    error(await api.patch("/assets/models/m/versions/7", body={"description": "x"}), 404,
          "asset_not_found")
    error(await api.post("/assets/models/m/versions/7/archive"), 404, "asset_not_found")
    error(await api.post("/assets/models/zzz/versions/1/restore"), 404, "asset_not_found")
    error(await api.post("/assets/models/m/versions/1/delete"), 404, "not_found")


# --- environment builds -------------------------------------------------------------------------


async def test_build_a_venv_in_the_background_and_follow_it(api: Api, ws: Workspace) -> None:
    ws.environments.create("tiny", pip_requirements=["six==1.16.0"])
    path = "/environments/tiny/versions/1/build"
    before = await api.get(path, params={"builder": "venv"})
    assert before.json["status"] in ("not_built", "cached")

    started = await api.post(path, params={"builder": "venv"})
    assert started.code == 202
    if started.json["status"] == "building":
        again = await api.post(path, params={"builder": "venv"})
        assert again.code == 202 and again.json["status"] in ("building", "succeeded")
        assert again.json["started_at"] == started.json["started_at"]  # joined, not restarted

    async def finished() -> dict[str, Any] | None:
        build: dict[str, Any] = (await api.get(path, params={"builder": "venv"})).json
        return build if build["status"] != "building" else None

    build = await until(finished, timeout=240, every=0.5)
    assert build["status"] in ("succeeded", "cached"), build
    assert build["env_hash"] == ws.environments.get("tiny").env_hash
    assert build["result"]["builder"] == "venv" and Path(build["result"]["image"]).is_dir()
    if build["status"] == "succeeded":
        assert build["log"] and build["finished_at"]

    listed = (await api.get("/assets/environments", params={"q": "tiny"})).json["items"]
    assert listed[0]["cached"] is True
    one = (await api.get("/assets/environments/tiny/versions/latest")).json
    assert one["cached"] is True
    assert (await api.post(path, params={"builder": "venv"})).json["status"] == "cached"

    error(await api.get(path, params={"builder": "conda"}), 400, "invalid")
    error(await api.post("/environments/nope/versions/1/build"), 404, "asset_not_found")
    error(await api.get("/environments/tiny/versions/9/build"), 404, "asset_not_found")


async def test_a_failing_build_is_reported(api: Api, ws: Workspace) -> None:
    ws.environments.create("ready", image="myorg/app:1.0")  # a ready image no venv can be
    path = "/environments/ready/versions/latest/build"
    assert (await api.post(path, params={"builder": "venv"})).code == 202

    async def failed() -> dict[str, Any] | None:
        build: dict[str, Any] = (await api.get(path, params={"builder": "venv"})).json
        return build if build["status"] == "failed" else None

    build = await until(failed, timeout=30)
    assert "venv cannot be made" in build["error"]


async def test_docker_down_lists_still_work_and_builds_answer_503(
        api: Api, ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    reply = await api.get("/assets/environments")
    assert reply.code == 200
    # without Docker, "cached" can only come from a virtualenv (other tests may have built one)
    venvs = [ws.environments.lookup(ws.environments.get(i["name"], i["version"]), "venv")
             is not None for i in reply.json["items"]]
    assert [i["cached"] for i in reply.json["items"]] == venvs
    path = "/environments/MLWS-python-3.11-minimal/versions/1/build"
    body = error(await api.post(path), 503, "docker_unavailable")
    assert "docker" in body["hint"].lower()
    error(await api.get(path), 503, "docker_unavailable")


# --- jobs -----------------------------------------------------------------------------------------


async def test_a_notebook_job_from_submission_to_its_output_notebook(
        api: Api, ws: Workspace, jp_root_dir: Path) -> None:
    make_notebook(jp_root_dir / "work" / "train.ipynb", TRAIN, parameters=TRAIN_PARAMS)

    reply = await api.get("/notebooks/parameters", params={"path": "work/train.ipynb"})
    params = {p["name"]: p for p in reply.json["parameters"]}
    assert list(params) == ["epochs", "lr", "name"]
    assert params["epochs"]["type"] == "int" and params["epochs"]["default"] == "2"
    assert params["lr"]["type"] == "float" and params["name"]["default"] == '"demo"'
    assert params["name"]["help"] == "what to call the model"

    reply = await api.post("/jobs", body={"notebook": "work/train.ipynb",
                                          "parameters": {"epochs": 4, "name": "resnet"},
                                          "outputs": ["model"], "experiment": "rest"})
    assert reply.code == 201, reply.body
    job = reply.json
    assert job["status"] == "Queued" and job["type"] == "notebook"
    assert job["experiment"] == "rest" and job["compute"] == "local"
    assert reply.headers["Location"].endswith(f"/mlws/api/jobs/{job['id']}")
    listed = (await api.get("/jobs")).json
    assert [j["id"] for j in listed["items"]] == [job["id"]] and listed["total"] == 1

    # follow the log by offset: the text grows, then done
    offset, text, grew = 0, "", 0
    deadline = time.monotonic() + 120
    while True:
        chunk = (await api.get(f"/jobs/{job['id']}/logs", params={"offset": offset})).json
        assert chunk["offset"] >= offset
        if chunk["text"]:
            grew += 1
            assert "\ufffd" not in chunk["text"]  # no character cut in two
        text += chunk["text"]
        offset = chunk["offset"]
        if chunk["done"]:
            break
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.1)
    assert grew >= 2, text
    assert all(f"epoch {i} lr=0.1 \u2713" in text for i in range(4)), text
    assert offset == len(text.encode())
    last = (await api.get(f"/jobs/{job['id']}/logs", params={"offset": offset})).json
    assert last == {"text": "", "offset": offset, "done": True}
    tail = (await api.get(f"/jobs/{job['id']}/logs", params={"tail": 2})).json
    assert len(tail["text"].splitlines()) <= 2 and tail["offset"] == offset and tail["done"]
    beyond = (await api.get(f"/jobs/{job['id']}/logs", params={"offset": offset + 99})).json
    assert beyond["text"] == "" and beyond["done"] is True

    detail = (await api.get(f"/jobs/{job['id']}")).json
    assert detail["status"] == "Completed", detail
    assert [e["status"] for e in detail["events"]] == ["Queued", "Preparing", "Running",
                                                       "Completed"]
    assert detail["params"]["epochs"] == 4
    assert [o["name"] for o in detail["outputs"]] == ["model"]
    assert detail["progress"]["executed"] == detail["progress"]["total"] == 3  # + injected
    assert detail["children"] == [] and detail["produced"] == []
    assert detail["duration_s"] > 0

    metrics = (await api.get(f"/jobs/{job['id']}/metrics")).json["items"]
    assert [(m["key"], m["value"], m["step"]) for m in metrics] == [
        ("loss", 1.0, 0), ("loss", 0.5, 1), ("loss", pytest.approx(1 / 3), 2),
        ("loss", 0.25, 3)]

    opened = (await api.post(f"/jobs/{job['id']}/output-notebook")).json
    assert opened == {"path": f"mlws-outputs/{job['id']}.ipynb"}
    out = nbformat.read(jp_root_dir / opened["path"], as_version=4)
    assert "epoch 3" in json.dumps([c.get("outputs", []) for c in out.cells])
    assert (await api.post(f"/jobs/{job['id']}/output-notebook")).json == opened  # again: fine

    reply = await api.post(f"/jobs/{job['id']}/cancel")
    assert reply.code == 200 and reply.json["status"] == "Completed"  # a no-op once ended


async def test_cancel_a_running_job(api: Api, jp_root_dir: Path) -> None:
    make_notebook(jp_root_dir / "sleepy.ipynb",
                   'import time\nprint("sleeping", flush=True)\ntime.sleep(120)')
    job = (await api.post("/jobs", body={"notebook": "sleepy.ipynb"})).json

    async def status_is(*wanted: str) -> bool:
        return (await api.get(f"/jobs/{job['id']}")).json["status"] in wanted

    await until(lambda: status_is("Running"))
    reply = await api.post(f"/jobs/{job['id']}/cancel")
    assert reply.code == 200 and reply.json["id"] == job["id"]
    await until(lambda: status_is("Canceled"), timeout=30)
    running = (await api.get("/jobs", params={"status": "Running"})).json
    assert running["items"] == [] and running["total"] == 0


async def test_job_lists_page_and_filter(api: Api, ws: Workspace) -> None:
    ids = [ws.jobs.submit_command("echo hi", experiment="a" if i < 2 else "b").id
           for i in range(3)]
    for job_id in ids:
        assert ws.jobs.wait(job_id, timeout=60).status == "Completed"

    async def page(**params: Any) -> tuple[list[str], int]:
        reply = (await api.get("/jobs", params=params)).json
        return [j["id"] for j in reply["items"]], reply["total"]

    newest_first = list(reversed(ids))
    assert await page() == (newest_first, 3)
    assert await page(limit=2) == (newest_first[:2], 3)
    assert await page(limit=2, offset=2) == (newest_first[2:], 3)
    assert await page(experiment="a") == (ids[1::-1], 2)
    assert await page(experiment="a", limit=1) == ([ids[1]], 2)
    assert await page(status="completed,Failed") == (newest_first, 3)
    assert await page(status="Queued", limit=1) == ([], 0)
    assert await page(parent=ids[0]) == ([], 0)

    body = error(await api.get("/jobs", params={"status": "Done"}), 400, "invalid")
    assert "Completed" in body["hint"]
    error(await api.get("/jobs", params={"limit": 501}), 400, "invalid")
    body = error(await api.post(f"/jobs/{ids[0]}/output-notebook"), 404, "not_found")
    assert "not a notebook job" in body["message"]


async def test_job_routes_refuse_bad_input(api: Api, jp_root_dir: Path, tmp_path: Path) -> None:
    make_notebook(jp_root_dir / "nb.ipynb", "x = 1", parameters="a = 1")
    outside = make_notebook(tmp_path / "outside" / "secret.ipynb", "print('no')")
    (jp_root_dir / "link").symlink_to(outside.parent, target_is_directory=True)
    (jp_root_dir / "notes.ipynb").write_text("this is not json")

    async def submit(body: Any = None, raw: bytes | None = None) -> Reply:
        return await api.post("/jobs", body=body, raw=raw)

    assert "'..'" in error(await submit({"notebook": "../outside/secret.ipynb"}), 400,
                           "unsafe_path")["message"]
    assert "symbolic link" in error(await submit({"notebook": "link/secret.ipynb"}), 400,
                                    "unsafe_path")["message"]
    error(await submit({"notebook": "/etc/passwd"}), 404, "not_found")  # root-relative
    error(await submit({"notebook": "missing.ipynb"}), 404, "not_found")
    body = error(await submit({"notebook": "nb.ipynb", "parameters": {"b": 2}}), 400, "invalid")
    assert "a" in body["hint"]
    error(await submit({"notebook": "nb.ipynb", "compute": "nope"}), 404, "asset_not_found")
    error(await submit({"notebook": "nb.ipynb", "environment": "nope"}), 404, "asset_not_found")
    error(await submit({"notebok": "nb.ipynb"}), 400, "invalid")
    error(await submit({"notebook": "nb.ipynb", "timeout": -1}), 400, "invalid")
    error(await submit(raw=b"{not json"), 400, "invalid")
    error(await submit({"notebook": "notes.ipynb"}), 400, "invalid_spec")

    for route in ("", "/logs", "/metrics"):
        error(await api.get(f"/jobs/no_such_job{route}"), 404)
    for route in ("/cancel", "/output-notebook"):
        error(await api.post(f"/jobs/no_such_job{route}"), 404)
    error(await api.get("/jobs/no_such_job/logs", params={"offset": -5}), 400, "invalid")
    error(await api.get("/jobs/no_such_job/logs", params={"tail": 0}), 400, "invalid")

    params = "/notebooks/parameters"
    assert (await api.get(params, params={"path": "nb.ipynb"})).json["parameters"][0]["name"] == "a"
    error(await api.get(params, params={"path": "../outside/secret.ipynb"}), 400, "unsafe_path")
    error(await api.get(params, params={"path": "link/secret.ipynb"}), 400, "unsafe_path")
    error(await api.get(params, params={"path": "missing.ipynb"}), 404, "not_found")
    error(await api.get(params, params={"path": "notes.ipynb"}), 400, "invalid_spec")
    error(await api.get(params), 400, "invalid")
