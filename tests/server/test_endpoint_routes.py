"""The online endpoint routes through a real Jupyter server, with real deployments: a supervisor,
a router on a real port and replica processes running an Azure-style ``score.py``.

Each answer is validated against ``openapi.yaml`` by the ``api`` fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_mlws import Workspace
from tests.endpoints.conftest import alive, endpoint_pids, wait_for
from tests.server.test_rest import error, until

Api = Any

SCORE = '''\
import json, os, sys
model = None

def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights.json")) as f:
        model = json.load(f)
    print("init done:", os.environ.get("COLOR"), flush=True)

def run(raw_data):
    data = json.loads(raw_data)["data"]
    if data == "boom":
        raise ValueError("cannot score boom")
    if isinstance(data, str):
        print("run got", data, flush=True)
    return {"predictions": [model["w"] * x + model["b"] for x in data] if isinstance(data, list)
            else data, "color": os.environ.get("COLOR"), "python": sys.executable}
'''

CRASHING = '''\
def init():
    raise FileNotFoundError("weights.bin is missing from the model folder")

def run(raw_data):
    return raw_data
'''


@pytest.fixture
def eps(ws: Workspace, jp_root_dir: Path, tmp_path: Path) -> Iterator[Workspace]:
    """A registered model ``lin:1``, scoring code under the server root (``serving/``,
    ``crashing/``); every endpoint is deleted afterwards and no process of it is left."""
    model = tmp_path / "weights.json"
    model.write_text('{"w": 2.0, "b": 1.0}')
    ws.models.create("lin", model)
    for folder, text in (("serving", SCORE), ("crashing", CRASHING)):
        (jp_root_dir / folder).mkdir()
        (jp_root_dir / folder / "score.py").write_text(text)
    yield ws
    pids: list[int] = []
    for ep in ws.store.list_endpoints():  # type: ignore[attr-defined]
        pids += endpoint_pids(ws, ep.name)
        with contextlib.suppress(Exception):
            ws.endpoints.delete(ep.name)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def deployment(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "model": "azureml:lin:1", "code": "serving",
            "scoring_script": "score.py", "environment_variables": {"COLOR": name}, **extra}


async def invoke(api: Api, endpoint: str, **body: Any) -> dict[str, Any]:
    reply = await api.post(f"/endpoints/{endpoint}/invoke", body=body)
    assert reply.code == 200, reply.body[:500]
    answer: dict[str, Any] = reply.json
    return answer


async def test_deploy_invoke_split_follow_logs_and_delete(api: Api, eps: Workspace) -> None:
    created = await api.post("/endpoints", body={"name": "ep-rest", "description": "demo"})
    assert created.code == 201 and created.headers["Location"].endswith("/endpoints/ep-rest")
    assert created.json["deployment_list"] == []
    blue = await api.post("/endpoints/ep-rest/deployments",
                          body=deployment("blue", instance_count=2, all_traffic=True))
    assert blue.code == 201, blue.body[:2000]
    assert blue.json["state"] == "Succeeded" and blue.json["replicas_ready"] == 2
    assert blue.json["model"] == "lin:1" and blue.json["traffic"] == 100

    listed = (await api.get("/endpoints")).json["items"]
    assert [e["name"] for e in listed] == ["ep-rest"]
    assert listed[0]["traffic"] == {"blue": 100}
    assert listed[0]["scoring_uri"] == f"http://127.0.0.1:{listed[0]['port']}/score"
    [dep] = listed[0]["deployment_list"]
    assert dep["name"] == "blue" and dep["state"] == "Succeeded" and len(dep["replicas"]) == 2

    answer = await invoke(api, "ep-rest", request={"data": [1, 2, 3]})
    assert answer["status"] == 200 and answer["deployment"] == "blue"
    assert answer["json"]["predictions"] == [3.0, 5.0, 7.0] and answer["json"]["color"] == "blue"
    assert answer["latency_ms"] > 0

    # the log: its tail, then what comes after, from the offset
    tail = (await api.get("/endpoints/ep-rest/deployments/blue/logs",
                          params={"tail": 50})).json
    assert "init done: blue" in tail["text"] and tail["done"] is False
    await invoke(api, "ep-rest", request={"data": "marker-7781"})

    async def followed() -> Any:
        chunk = (await api.get("/endpoints/ep-rest/deployments/blue/logs",
                               params={"offset": tail["offset"]})).json
        return chunk if "run got marker-7781" in chunk["text"] else None

    chunk = await until(followed, timeout=30)
    assert "init done" not in chunk["text"] and chunk["offset"] > tail["offset"]

    # a second deployment, in a registered environment's venv, and the traffic split
    env = eps.environments.create("serve-env", pip_requirements=["six==1.16.0"])
    started = await api.post("/endpoints/ep-rest/deployments", params={"wait": "false"},
                             body=deployment("green", environment="serve-env:1"))
    assert started.code == 202 and started.json["status"] == "running", started.body[:2000]
    assert started.headers["Location"].endswith("/deployments/green/operation")
    again = await api.post("/endpoints/ep-rest/deployments", params={"wait": "false"},
                           body=deployment("green", environment="serve-env:1"))
    assert "being created already" in error(again, 409)["message"]

    async def finished() -> Any:
        op = (await api.get("/endpoints/ep-rest/deployments/green/operation")).json
        return op if op["status"] != "running" else None

    op = await until(finished, timeout=240)
    assert op["status"] == "succeeded" and op["error"] is None, op
    # the venv's build log, or (when another test of the session built the same definition into
    # the shared envs folder) the line saying the cached venv is used
    assert env.env_hash in op["log"] or "six" in op["log"], op["log"]
    assert op["finished_at"]
    green = await api.get("/endpoints/ep-rest/deployments/green")
    assert green.json["state"] == "Succeeded" and green.json["traffic"] == 0
    assert green.json["environment"] == "serve-env:1" and green.json["env_hash"] == env.env_hash
    assert op["result"]["generation"] == green.json["generation"]
    bad = await api.call("PUT", "/endpoints/ep-rest/traffic",
                         body={"traffic": {"blue": 80, "green": 10}})
    assert "sums to 90%" in error(bad, 400)["message"]
    bad = await api.call("PUT", "/endpoints/ep-rest/traffic", body={"traffic": "blue=90 red=10"})
    assert "no deployment of" in error(bad, 400)["message"]
    assert (await api.get("/endpoints/ep-rest")).json["traffic"] == {"blue": 100}
    moved = await api.call("PUT", "/endpoints/ep-rest/traffic",
                           body={"traffic": {"blue": 0, "green": 100}})
    assert moved.code == 200 and moved.json["traffic"] == {"blue": 0, "green": 100}
    by_split = await invoke(api, "ep-rest", request={"data": [0]})
    assert by_split["deployment"] == "green"
    assert by_split["json"]["python"] == green.json["python"] != blue.json["python"]
    assert env.env_hash in by_split["json"]["python"]  # the environment's own venv
    picked = await invoke(api, "ep-rest", request={"data": [0]}, deployment="blue")
    assert picked["deployment"] == "blue" and picked["json"]["color"] == "blue"

    # no answer ever carries a key
    keys = eps.endpoints.credentials("ep-rest")
    for path in ("/endpoints", "/endpoints/ep-rest", "/endpoints/ep-rest/deployments",
                 "/endpoints/ep-rest/deployments/blue"):
        text = (await api.get(path)).body.decode()
        assert all(k not in text for k in keys.values()), path
    assert all(k not in json.dumps(answer) for k in keys.values())

    busy = await api.call("DELETE", "/endpoints/ep-rest/deployments/green")
    assert "takes 100%" in error(busy, 409)["message"]
    gone = await api.call("DELETE", "/endpoints/ep-rest/deployments/blue")
    assert gone.code == 200 and gone.json == {"deleted": "blue"}
    error(await api.get("/endpoints/ep-rest/deployments/blue"), 404)
    port = (await api.get("/endpoints/ep-rest")).json["port"]
    pids = endpoint_pids(eps, "ep-rest")
    assert (await api.call("DELETE", "/endpoints/ep-rest")).json == {"deleted": "ep-rest"}
    error(await api.get("/endpoints/ep-rest"), 404)
    assert (await api.get("/endpoints")).json["items"] == []
    assert pids
    wait_for(lambda: not any(alive(p) for p in pids), what="the endpoint's processes gone")
    with pytest.raises(OSError):
        __import__("socket").create_connection(("127.0.0.1", port), timeout=2).close()


async def test_bad_input_is_a_400_and_unknown_names_a_404(api: Api, eps: Workspace,
                                                          jp_root_dir: Path) -> None:
    error(await api.get("/endpoints/nope"), 404, "not_found")
    error(await api.get("/endpoints/nope/deployments"), 404)
    error(await api.get("/endpoints/nope/deployments/blue/logs"), 404)
    error(await api.get("/endpoints/nope/deployments/blue/operation"), 404)
    error(await api.post("/endpoints/nope/invoke", body={"request": {}}), 404)
    error(await api.post("/endpoints/nope/deployments", body=deployment("blue")), 404)
    error(await api.call("PUT", "/endpoints/nope/traffic", body={"traffic": {}}), 404)
    error(await api.call("DELETE", "/endpoints/nope"), 404)
    assert "endpoint name" in error(await api.post("/endpoints", body={"name": "-x"}),
                                    400)["message"]
    error(await api.post("/endpoints", body={"name": "ep-bad", "colour": "red"}), 400)
    assert (await api.post("/endpoints", body={"name": "ep-bad"})).code == 201
    error(await api.post("/endpoints", body={"name": "ep-bad"}), 409)

    outside = jp_root_dir.parent / "outside-code"
    outside.mkdir()
    (outside / "score.py").write_text(SCORE)
    (jp_root_dir / "linked").symlink_to(outside)
    for bad, words in (({"code": "../outside-code"}, "climbs out"),
                       ({"code": "linked"}, "outside the server's root"),
                       ({"code": "/etc"}, None),
                       ({"scoring_script": "../../etc/passwd"}, "inside the code folder"),
                       ({"code": "missing"}, "not a folder"),
                       ({"instance_count": 0}, "instance_count"),
                       ({"colour": "red"}, "colour")):
        reply = await api.post("/endpoints/ep-bad/deployments", body={**deployment("blue"), **bad})
        body = error(reply, 400)
        assert words is None or words in body["message"], (bad, body)
    error(await api.post("/endpoints/ep-bad/deployments",
                         body=deployment("blue", model="azureml:nope:1")), 404)
    assert eps.store.list_deployments("ep-bad") == []  # type: ignore[attr-defined]

    # init() raising: 422 with its traceback; the traffic is not changed
    failed = await api.post("/endpoints/ep-bad/deployments",
                            body={**deployment("red"), "code": "crashing", "all_traffic": True})
    body = error(failed, 422, "deployment_failed")
    assert "weights.bin is missing" in body["message"]
    shown = (await api.get("/endpoints/ep-bad/deployments/red")).json
    assert shown["state"] == "Failed" and "FileNotFoundError" in shown["error"]
    assert (await api.get("/endpoints/ep-bad")).json["traffic"] == {}
    started = await api.post("/endpoints/ep-bad/deployments", params={"wait": "false"},
                             body={**deployment("pink"), "code": "crashing"})
    assert started.code == 202

    async def ended() -> Any:
        op = (await api.get("/endpoints/ep-bad/deployments/pink/operation")).json
        return op if op["status"] != "running" else None

    op = await until(ended, timeout=120)
    assert op["status"] == "failed" and op["result"] is None
    assert op["error"]["error"] == "deployment_failed"
    assert "weights.bin is missing" in op["error"]["message"]

    ok = await api.post("/endpoints/ep-bad/deployments", body=deployment("blue",
                                                                          all_traffic=True))
    assert ok.code == 201
    malformed = await invoke(api, "ep-bad", request_text="{not json")  # run() gets it as it is
    assert malformed["status"] == 500 and malformed["ok"] is False
    assert "Expecting property name" in malformed["body"]
    raised = await invoke(api, "ep-bad", request={"data": "boom"})
    assert raised["status"] == 500 and "cannot score boom" in raised["body"]
    error(await api.post("/endpoints/ep-bad/invoke", body={}), 400)
    error(await api.post("/endpoints/ep-bad/invoke", body={"request": 1, "request_text": "1"}),
          400)
    error(await api.post("/endpoints/ep-bad/invoke",
                         body={"request": {"data": [1]}, "deployment": "nope"}), 404)
    error(await api.get("/endpoints/ep-bad/deployments/blue/logs", params={"tail": 0}), 400)


ROUTES = [
    ("GET", "/endpoints"),
    ("POST", "/endpoints"),
    ("GET", "/endpoints/ep-auth"),
    ("DELETE", "/endpoints/ep-auth"),
    ("PUT", "/endpoints/ep-auth/traffic"),
    ("POST", "/endpoints/ep-auth/invoke"),
    ("GET", "/endpoints/ep-auth/deployments"),
    ("POST", "/endpoints/ep-auth/deployments"),
    ("GET", "/endpoints/ep-auth/deployments/blue"),
    ("DELETE", "/endpoints/ep-auth/deployments/blue"),
    ("GET", "/endpoints/ep-auth/deployments/blue/logs"),
    ("GET", "/endpoints/ep-auth/deployments/blue/operation"),
]


async def test_every_endpoint_route_answers_403_without_the_token(api: Api,
                                                                  eps: Workspace) -> None:
    eps.endpoints.create({"name": "ep-auth"})
    for method, path in ROUTES:
        body = {"name": "ep-other"} if method == "POST" else None
        for headers in ({}, {"Authorization": "token not-the-token"}):
            reply = await api.call(method, path, body=body, headers=headers, auth=False)
            assert error(reply, 403, "forbidden"), (method, path)
    assert [e.name for e in eps.store.list_endpoints()] == ["ep-auth"]  # type: ignore[attr-defined]


def test_the_contract_lists_exactly_the_endpoint_routes_tested_here() -> None:
    from jupyter_mlws.server.endpoint_handlers import endpoint_routes
    from tests.server.conftest import CONTRACT

    paths = yaml.safe_load(CONTRACT.read_text())["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items()
                  if path.startswith("/endpoints") for method in ops}
    tested = {(m, p.replace("ep-auth", "{endpoint}").replace("/blue", "/{deployment}"))
              for m, p in ROUTES}
    assert documented == tested
    served = {re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern) for pattern, _h in endpoint_routes()}
    assert served == {p for _m, p in documented}


async def test_an_mlflow_model_deploys_with_no_code(api: Api, eps: Workspace,
                                                    tmp_path: Path) -> None:
    """No code and no scoring script: MLflow's pyfunc serves the model in the server's
    interpreter (which has mlflow); Azure's ``input_data`` request shape is answered."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.9, 0.3]})
    model = LinearRegression().fit(x, 3 * x["a"] - x["b"])
    mlflow.sklearn.save_model(model, str(tmp_path / "sk-model"), signature=infer_signature(x))
    eps.models.create("sk-reg", tmp_path / "sk-model", type="mlflow_model")
    assert (await api.post("/endpoints", body={"name": "ep-nocode"})).code == 201

    # only an mlflow_model goes without code; code and script go together
    body = error(await api.post("/endpoints/ep-nocode/deployments",
                                body={"name": "blue", "model": "lin:1"}), 400, "invalid")
    assert "scoring script" in body["message"] and "mlflow_model" in body["hint"]
    body = error(await api.post("/endpoints/ep-nocode/deployments",
                                body={"name": "blue", "model": "sk-reg:1", "code": "serving"}),
                 400, "invalid")
    assert "code without scoring_script" in body["message"]
    assert eps.store.list_deployments("ep-nocode") == []  # type: ignore[attr-defined]

    created = await api.post("/endpoints/ep-nocode/deployments",
                             body={"name": "blue", "model": "azureml:sk-reg:1",
                                   "all_traffic": True})
    assert created.code == 201, created.body[:3000]
    assert created.json["state"] == "Succeeded" and created.json["model"] == "sk-reg:1"
    assert created.json["traffic"] == 100
    rows = {"columns": ["a", "b"], "index": [0, 1], "data": [[5.0, 0.2], [6.0, 0.4]]}
    answer = await invoke(api, "ep-nocode", request={"input_data": rows})
    assert answer["status"] == 200 and answer["deployment"] == "blue"
    expected = model.predict(pd.DataFrame(rows["data"], columns=rows["columns"]))
    assert answer["json"] == [pytest.approx(v) for v in expected]
    assert answer["json"] == [pytest.approx(14.8), pytest.approx(17.6)]
