"""What a REST caller may name (defect 7), the output-notebook copy (defect 9), and the one
literal parser on REST. Through a real Jupyter server; jobs are real papermill runs.
"""

from __future__ import annotations

import asyncio
import functools
import os
from pathlib import Path
from typing import Any

import nbformat

from jupyter_mlws import Workspace
from tests.helpers import make_notebook
from tests.surface.literal_cases import (
    CASES,
    INPUT_CASES,
    NOTEBOOK_PARAMETERS,
    REFUSED,
    as_json,
    expected,
)

Api = Any
Reply = Any


def error(reply: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.code == status, (reply.code, reply.body[:500])
    body: dict[str, Any] = reply.json
    if code is not None:
        assert body["error"] == code, body
    assert body["message"]
    return body


async def finished(ws: Workspace, job_id: str) -> Any:
    """The job once it ended (waiting off the event loop the server runs on)."""
    wait = functools.partial(ws.jobs.wait, job_id, timeout=180)
    return await asyncio.get_running_loop().run_in_executor(None, wait)


async def test_inputs_code_and_outputs_may_not_name_host_paths(
        api: Api, ws: Workspace, jp_root_dir: Path, tmp_path: Path) -> None:
    make_notebook(jp_root_dir / "work" / "nb.ipynb", "pass", parameters="src = ''")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("s3cret")
    (jp_root_dir / "link").symlink_to(secret.parent, target_is_directory=True)
    refused: list[dict[str, Any]] = [
        {"inputs": {"src": str(secret)}},
        {"inputs": {"src": "/etc/passwd"}},
        {"inputs": {"src": "~/.bashrc"}},
        {"inputs": {"src": os.path.relpath(secret, jp_root_dir)}},  # ../outside/secret.txt
        {"inputs": {"src": "link/secret.txt"}},
        {"inputs": {"src": f"file://{secret}"}},
        {"inputs": {"src": "s3://bucket/key"}},
        {"inputs": {"src": {"type": "uri_file", "path": str(secret)}}},
        {"inputs": {"src": {"path": "link/secret.txt"}}},
        {"inputs": {"src": {"value": str(secret)}}},
        {"inputs": {"src": [str(secret)]}},
        {"literal_inputs": {"src": str(secret)}},
        {"code": str(secret.parent)},
        {"code": "link"},
        {"outputs": ["../../escape"]},
    ]
    for extra in refused:
        reply = await api.post("/jobs", body={"notebook": "work/nb.ipynb", **extra})
        # 400, or 404 for an absolute path read (as for the notebook) relative to the root
        assert reply.code in (400, 404), (extra, reply.code, reply.body[:300])
        assert reply.json["error"] in ("unsafe_path", "invalid", "not_found"), (extra, reply.json)
    body = error(await api.post("/jobs", body={"notebook": "work/nb.ipynb",
                                               "inputs": {"src": str(secret)}}), 400)
    assert "server's root folder" in body["message"] and "register" in body["hint"]
    assert ws.jobs.list(include_children=True) == []
    assert not (tmp_path / "escape").exists()
    # the same notebook with an allowed input is accepted (the refusals above were the inputs)
    reply = await api.post("/jobs", body={"notebook": "work/nb.ipynb", "inputs": {"src": "x"}})
    assert reply.code == 201, reply.body


async def test_nul_bytes_and_unusable_paths_answer_400(api: Api, ws: Workspace,
                                                       jp_root_dir: Path) -> None:
    make_notebook(jp_root_dir / "nb.ipynb", "pass", parameters="src = ''")
    for body in ({"notebook": "nb\x00.ipynb"},
                 {"notebook": "nb.ipynb", "inputs": {"src": "a\x00b"}},
                 {"notebook": "nb.ipynb", "inputs": {"src": {"path": "x\x00"}}},
                 {"notebook": "nb.ipynb", "literal_inputs": {"src": "'a\x00'"}},
                 {"notebook": "nb.ipynb", "code": "d\x00"}):
        error(await api.post("/jobs", body=body), 400, "unsafe_path")
    long = "d/" * 3000 + "x.ipynb"
    for body in ({"notebook": long}, {"notebook": "nb.ipynb", "inputs": {"src": long}},
                 {"notebook": "n" * 5000 + ".ipynb"}):
        reply = await api.post("/jobs", body=body)
        assert reply.code in (400, 404), (reply.code, reply.body[:300])
    error(await api.get("/notebooks/parameters", params={"path": "nb\x00.ipynb"}), 400,
          "unsafe_path")
    assert ws.jobs.list(include_children=True) == []


async def test_paths_under_the_root_assets_and_datastores_reach_the_job(
        api: Api, ws: Workspace, jp_root_dir: Path, tmp_path: Path) -> None:
    (jp_root_dir / "data").mkdir()
    (jp_root_dir / "data" / "in.txt").write_text("abc")
    ws.data.create("letters", str(jp_root_dir / "data" / "in.txt"), type="uri_file")
    store = tmp_path / "store"
    store.mkdir()
    (store / "f.txt").write_text("from the store")
    ws.datastores.create("shelf", type="local", path=str(store))
    make_notebook(jp_root_dir / "nb.ipynb",
                  "import pathlib\n"
                  "print('A', pathlib.Path(a).read_text())\n"
                  "print('B', pathlib.Path(b).read_text())\n"
                  "print('C', c, type(c).__name__)\n"
                  "print('D', pathlib.Path(d).read_text())",
                  parameters="a = ''\nb = ''\nc = ''\nd = ''")
    reply = await api.post("/jobs", body={"notebook": "nb.ipynb", "inputs": {
        "a": "data/in.txt", "b": "azureml:letters:1", "c": "adam",
        "d": "mlws://datastores/shelf/paths/f.txt"}})
    assert reply.code == 201, reply.body
    job = await finished(ws, reply.json["id"])
    log = ws.jobs.logs(job.id)
    assert job.status == "Completed", log
    for line in ("A abc", "B abc", "C adam str", "D from the store"):
        assert line in log, log
    uris = {io.name: io.uri for io in ws.jobs.io(job.id) if io.direction == "input"}
    assert uris["a"] == str((jp_root_dir / "data" / "in.txt").resolve())


async def test_literals_have_the_types_every_surface_gives(api: Api, ws: Workspace,
                                                          jp_root_dir: Path) -> None:
    make_notebook(jp_root_dir / "types.ipynb", "pass", parameters=NOTEBOOK_PARAMETERS)
    reply = await api.post("/jobs", body={
        "notebook": "types.ipynb",
        "literal_parameters": {name: text for name, (text, _v) in CASES.items()},
        "literal_inputs": {name: text for name, (text, _v) in INPUT_CASES.items()}})
    assert reply.code == 201, reply.body
    assert as_json(ws.jobs.get(reply.json["id"]).spec["parameters"]) == expected(inputs=True)
    for text, words in REFUSED.items():
        body = error(await api.post("/jobs", body={
            "notebook": "types.ipynb", "literal_parameters": {"p_int": text}}), 400, "invalid")
        message = f"{body['message']} {body.get('hint', '')}"
        assert all(word in message for word in words), body


async def test_a_refused_literal_names_its_field_and_name(api: Api, ws: Workspace,
                                                         jp_root_dir: Path) -> None:
    """The sidebar's form shows the server's refusal beside the input it came from."""
    make_notebook(jp_root_dir / "types.ipynb", "pass", parameters=NOTEBOOK_PARAMETERS)
    for field, name in [("literal_parameters", "p_list"), ("literal_inputs", "lr")]:
        body = error(await api.post("/jobs", body={
            "notebook": "types.ipynb", field: {"p_int": "1", name: "{1, 2}"}}), 400, "invalid")
        assert body["details"] == {"field": field, "name": name}, body
        assert "a set" in body["message"] and "list" in body["hint"], body
    assert ws.jobs.list() == []


async def test_the_job_detail_is_the_one_the_cli_shows(api: Api, ws: Workspace,
                                                       jp_root_dir: Path) -> None:
    make_notebook(jp_root_dir / "m.ipynb", "from jupyter_mlws import run\n"
                  "run.log_metric('loss', 0.5)\nrun.log_metric('loss', 0.25)")
    job = await finished(ws, ws.jobs.submit_notebook(jp_root_dir / "m.ipynb").id)
    detail = (await api.get(f"/jobs/{job.id}")).json
    assert detail == ws.jobs.detail(job.id).public_dict() | {"duration_s": detail["duration_s"]}
    assert detail["latest_metrics"] == {"loss": 0.25} and len(detail["metrics"]) == 2


async def test_output_notebook_copy_never_follows_a_planted_link(
        api: Api, ws: Workspace, jp_root_dir: Path, tmp_path: Path) -> None:
    make_notebook(jp_root_dir / "nb.ipynb", "print('hi')")
    job = await finished(ws, ws.jobs.submit_notebook(jp_root_dir / "nb.ipynb").id)
    assert job.status == "Completed", ws.jobs.logs(job.id)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    outputs = jp_root_dir / "mlws-outputs"
    outputs.mkdir()
    planted = outputs / f".{job.id}.ipynb.{os.getpid()}.tmp"  # the name the copy used to use
    planted.symlink_to(victim)

    reply = await api.post(f"/jobs/{job.id}/output-notebook")
    assert reply.code == 200, reply.body
    assert victim.read_text() == "precious"
    target = jp_root_dir / reply.json["path"]
    assert target.is_file() and not target.is_symlink()
    assert nbformat.read(target, as_version=4).cells
    assert planted.is_symlink()  # left alone

    target.unlink()
    target.symlink_to(victim)  # a link at the destination itself
    body = error(await api.post(f"/jobs/{job.id}/output-notebook"), 400, "unsafe_path")
    assert "symbolic link" in body["message"]
    assert victim.read_text() == "precious" and target.is_symlink()
    leftovers = [p.name for p in outputs.iterdir() if p.name.endswith(".tmp") and p != planted]
    assert leftovers == []
