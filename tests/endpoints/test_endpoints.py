"""Online endpoints with real processes: a supervisor, a router on a real port, replicas running
an Azure-style score.py in a venv the workspace built."""

from __future__ import annotations

import http.client
import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.endpoints.router import DEPLOYMENT_HEADER
from jupyter_mlws.errors import DeploymentFailedError, ValidationError
from jupyter_mlws.jobs.runner import is_locked
from tests.endpoints.conftest import alive, endpoint_pids, wait_for

BODY = b'{"data": [1, 2, 3]}'


def post(port: int, *, key: str | None = None, deployment: str | None = None,
         body: bytes = BODY) -> tuple[int, dict, str | None]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if deployment:
        headers[DEPLOYMENT_HEADER] = deployment
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/score", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(data or b"null"), resp.getheader(DEPLOYMENT_HEADER)


def deploy(ws: Workspace, yaml_files, name: str, *, endpoint: str = "ep-test",  # type: ignore[no-untyped-def]
           all_traffic: bool = False, **kw) -> dict:
    path = yaml_files("deployment", name, endpoint=endpoint, **kw)
    return ws.endpoints.create_deployment(path, all_traffic=all_traffic)


def test_an_azure_score_py_deployed_from_yaml_answers_through_the_cli(
        cli, eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    cli("online-endpoint", "create", "-f", str(yaml_files("endpoint", "ep-test")), "--local")
    out = cli("online-deployment", "create", "-f", str(yaml_files("deployment", "blue", count=2)),
              "--all-traffic", "--local", "-o", "json", stdout=True)
    shown = json.loads(out)  # (stdout alone: the build's log is on stderr)
    assert shown["state"] == "Succeeded" and shown["replicas_ready"] == 2
    assert shown["traffic"] == 100
    assert any("instance_type Standard_DS3_v2" in n for n in shown["notes"])
    # Azure's layout: AZUREML_MODEL_DIR/<registered folder name>/...
    assert Path(shown["model_dir"], "model", "weights.json").is_file()
    assert shown["env_hash"] in shown["python"]  # the environment's own venv
    answer = json.loads(cli("online-endpoint", "invoke", "-n", "ep-test", "--request-file",
                            "request.json"))
    assert answer["predictions"] == [3.0, 5.0, 7.0] and answer["color"] == "blue"
    assert "init done: blue" in cli("online-deployment", "get-logs", "-e", "ep-test", "-n",
                                    "blue", "--lines", "50")
    listed = cli("online-deployment", "list", "-e", "ep-test")
    assert "blue" in listed and "Succeeded" in listed
    assert "blue=100" in cli("online-endpoint", "list")
    # the keys: printed by get-credentials only, stored encrypted
    keys = json.loads(cli("online-endpoint", "get-credentials", "-n", "ep-test"))
    shown_ep = cli("online-endpoint", "show", "-n", "ep-test")
    db = (eps.path / "mlws.db").read_bytes()
    for key in keys.values():
        assert key not in shown_ep and key.encode() not in db


def test_a_key_is_required(eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    ep = eps.endpoints.create(yaml_files("endpoint", "ep-test"))
    deploy(eps, yaml_files, "blue", all_traffic=True)
    keys = eps.endpoints.credentials("ep-test")
    port = ep["port"]
    assert post(port)[0] == 401
    assert post(port, key="not-the-key")[0] == 401
    assert post(port, key=keys["primaryKey"])[0] == 200
    assert post(port, key=keys["secondaryKey"])[0] == 200
    eps.endpoints.regenerate_keys("ep-test", "primary")
    new = eps.endpoints.credentials("ep-test")
    wait_for(lambda: post(port, key=keys["primaryKey"])[0] == 401, what="the old key refused")
    assert post(port, key=new["primaryKey"])[0] == 200
    assert post(port, key=new["secondaryKey"])[0] == 200


def test_traffic_is_split_by_weight_and_the_header_picks_a_deployment(
        eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True)
    deploy(eps, yaml_files, "green")
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    assert {post(port, key=key)[2] for _ in range(20)} == {"blue"}  # green takes no traffic yet
    assert post(port, key=key, deployment="green")[1]["color"] == "green"
    assert post(port, key=key, deployment="nope")[0] == 404
    with pytest.raises(ValidationError, match="sums to 90%"):
        eps.endpoints.update_traffic("ep-test", "blue=80 green=10")
    with pytest.raises(ValidationError, match="no deployment of"):
        eps.endpoints.update_traffic("ep-test", "blue=90 red=10")
    assert eps.endpoints.show("ep-test")["traffic"] == {"blue": 100}  # nothing changed
    eps.endpoints.update_traffic("ep-test", "blue=70 green=30")
    wait_for(lambda: post(port, key=key)[2] == "green", what="green takes traffic")
    n = 200
    counts = Counter()
    for _ in range(n):
        status, body, answered = post(port, key=key)
        assert status == 200 and body["color"] == answered
        counts[answered] += 1
    # 30% of 200 = 60, one standard deviation ~6.5: five of them either way
    assert 27 <= counts["green"] <= 93 and counts["blue"] + counts["green"] == n
    assert {post(port, key=key, deployment="blue")[2] for _ in range(10)} == {"blue"}


def test_a_crashing_init_fails_the_deployment_with_its_traceback(
        cli, eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True)
    out = cli("online-deployment", "create", "-f",
              str(yaml_files("deployment", "green", code="crashing")), "--all-traffic", code=1)
    assert "init() raised" in out and "FileNotFoundError: weights.bin is missing" in out
    assert "loading a model that is not there" in out  # the log's tail
    shown = eps.endpoints.show_deployment("ep-test", "green")
    assert shown["state"] == "Failed" and 'score.py", line 3, in init' in shown["error"]
    # the endpoint keeps serving the deployment it had
    assert eps.endpoints.show("ep-test")["traffic"] == {"blue": 100}
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    assert post(port, key=key)[2] == "blue"
    assert post(port, key=key, deployment="green")[0] == 503
    with pytest.raises(DeploymentFailedError, match="FileNotFoundError"):
        deploy(eps, yaml_files, "green", code="crashing")


def test_a_killed_replica_is_restarted_and_counted(eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    first = deploy(eps, yaml_files, "blue", all_traffic=True)
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    old_pid = first["replicas"][0]["pid"]
    assert post(port, key=key)[1]["pid"] == old_pid
    os.kill(old_pid, signal.SIGKILL)
    shown = wait_for(lambda: (d := eps.endpoints.show_deployment("ep-test", "blue"))["restarts"]
                     == 1 and d["replicas_ready"] == 1 and d, what="the replica restarted")
    new_pid = shown["replicas"][0]["pid"]
    assert new_pid != old_pid and shown["state"] == "Succeeded"
    assert post(port, key=key)[1]["pid"] == new_pid
    assert "exited with status -9; restart 1" in eps.endpoints.logs("ep-test", "blue")


def test_a_killed_supervisor_is_found_and_started_again_by_show(
        cli, eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True)
    old = endpoint_pids(eps, "ep-test")
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: not is_locked(eps.endpoints.paths("ep-test").lock), what="the lock freed")
    wait_for(lambda: not any(alive(p) for p in old), what="the replicas die with it")
    shown = json.loads(cli("online-endpoint", "show", "-n", "ep-test", "-o", "json"))
    assert shown["supervisor_restarted"] is True and shown["supervisor_pid"] != old[0]
    assert shown["port"] == port  # the same port after a restart
    eps.endpoints.wait_deployment("ep-test", "blue", timeout=60)
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    assert post(port, key=key)[0] == 200
    assert json.loads(cli("online-endpoint", "show", "-n", "ep-test", "-o", "json"))[
        "supervisor_restarted"] is False


def test_delete_stops_every_process_and_frees_the_port(cli, eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True, count=2)
    deploy(eps, yaml_files, "green")
    with pytest.raises(Exception, match="takes 100%"):
        eps.endpoints.delete_deployment("ep-test", "blue")
    green_pid = eps.endpoints.show_deployment("ep-test", "green")["replicas"][0]["pid"]
    cli("online-deployment", "delete", "-e", "ep-test", "-n", "green", "--yes")
    wait_for(lambda: not alive(green_pid), what="green's replica stopped")
    pids = endpoint_pids(eps, "ep-test")
    assert len(pids) == 3 and all(alive(p) for p in pids)
    cli("online-endpoint", "delete", "-n", "ep-test", "--yes")
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what="no process left")
    with pytest.raises(ConnectionRefusedError):
        post(port)
    assert not eps.endpoints.paths("ep-test").root.exists()
    assert "(none)" in cli("online-endpoint", "list")


def test_run_raising_is_a_500_with_its_text_and_a_bad_body_a_400(
        eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True)
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    status, body, answered = post(port, key=key, body=b'{"data": "boom"}')
    assert status == 500 and answered == "blue"
    assert body == {"error": "run() raised ValueError: cannot score boom"}
    assert "ValueError: cannot score boom" in eps.endpoints.logs("ep-test", "blue")
    assert post(port, key=key, body=b"\xff\xfe")[0] == 400
    assert post(port, key=key)[0] == 200  # the replica serves on


def test_a_taken_port_moves_the_endpoint_to_the_next_free_one(
        eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    import socket

    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    pid = endpoint_pids(eps, "ep-test")[0]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not is_locked(eps.endpoints.paths("ep-test").lock), what="the lock freed")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        shown = eps.endpoints.show("ep-test")
    assert shown["supervisor_restarted"] and shown["port"] != port
    assert eps.endpoints.show("ep-test")["scoring_uri"] == f"http://127.0.0.1:{shown['port']}/score"
    assert post(shown["port"])[0] == 401  # the router answers there


def test_an_update_rolls_without_a_failed_request_and_a_broken_one_rolls_back(
        eps: Workspace, yaml_files, project: Path) -> None:  # type: ignore[no-untyped-def]
    import threading

    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    first = deploy(eps, yaml_files, "blue", all_traffic=True)
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    statuses: Counter = Counter()
    colors: Counter = Counter()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            status, body, _ = post(port, key=key)
            statuses[status] += 1
            colors[body.get("color") if isinstance(body, dict) else None] += 1

    sender = threading.Thread(target=load)
    sender.start()
    try:
        wait_for(lambda: statuses[200] > 5, what="requests flowing")
        path = yaml_files("deployment", "blue")
        path.write_text(path.read_text().replace("COLOR: blue", "COLOR: blue-v2"))
        second = eps.endpoints.create_deployment(path)
        assert second["generation"] == 2 and second["state"] == "Succeeded"
        wait_for(lambda: colors["blue-v2"] > 5, what="the new version answering")
        old_pids = [r["pid"] for r in first["replicas"]]
        wait_for(lambda: not any(alive(p) for p in old_pids), what="old replicas stopped")
        # a new version whose init() raises: the running one keeps serving
        (project / "code-broken").mkdir()
        (project / "code-broken" / "score.py").write_text("def init():\n    1 / 0\n")
        broken = yaml_files("deployment", "blue", code="code-broken")
        with pytest.raises(DeploymentFailedError, match="previous version of it keeps serving"):
            eps.endpoints.create_deployment(broken)
        before = statuses[200]
        wait_for(lambda: statuses[200] > before + 5, what="requests still answered")
    finally:
        stop.set()
        sender.join()
    assert set(statuses) == {200}, statuses  # not one request failed
    shown = eps.endpoints.show_deployment("ep-test", "blue")
    assert shown["state"] == "Succeeded" and shown["replicas"][0]["pid"] == second[
        "replicas"][0]["pid"]
    assert post(port, key=key)[1]["color"] == "blue-v2"


def test_two_callers_finding_a_dead_supervisor_start_one(eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    import threading

    eps.endpoints.create(yaml_files("endpoint", "ep-test"))
    old = endpoint_pids(eps, "ep-test")[0]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not is_locked(eps.endpoints.paths("ep-test").lock), what="the lock freed")
    results: list = []

    def show() -> None:
        with Workspace.open(eps.path) as other:  # as a second terminal would
            results.append(other.endpoints.show("ep-test"))

    callers = [threading.Thread(target=show) for _ in range(2)]
    for c in callers:
        c.start()
    for c in callers:
        c.join()
    assert len(results) == 2 and results[0]["supervisor_pid"] == results[1]["supervisor_pid"]
    pid = results[0]["supervisor_pid"]
    assert pid != old and alive(pid)
    assert sum(r["supervisor_restarted"] for r in results) >= 1


def test_get_logs_follows_what_the_replicas_write(eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    import time

    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True)
    deadline = time.monotonic() + 30
    follow = eps.endpoints.follow_logs("ep-test", "blue", lines=3,
                                       until=lambda: time.monotonic() > deadline)
    assert "ready on port" in next(follow)
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    assert post(port, key=key, body=b'{"data": "boom"}')[0] == 500
    seen = ""
    for chunk in follow:
        seen += chunk
        if "cannot score boom" in seen:
            break
    assert "ValueError: cannot score boom" in seen


def test_mistakes_are_typed_errors_that_change_nothing(
        eps: Workspace, yaml_files, project: Path) -> None:  # type: ignore[no-untyped-def]
    from jupyter_mlws.errors import ConflictError, NotFoundError, SpecError

    with pytest.raises(NotFoundError, match="online-endpoint list"):
        eps.endpoints.show("nope")
    eps.endpoints.create(yaml_files("endpoint", "ep-test"))
    with pytest.raises(ConflictError, match="already exists"):
        eps.endpoints.create({"name": "ep-test"})
    with pytest.raises(NotFoundError, match="No online endpoint 'other'"):
        deploy(eps, yaml_files, "blue", endpoint="other")
    with pytest.raises(SpecError, match="unless its model is an mlflow_model"):
        eps.endpoints.create_deployment({"name": "blue", "endpoint_name": "ep-test",
                                         "model": {"path": str(project / "model")}})
    with pytest.raises(SpecError, match="no scoring script 'missing.py'"):
        eps.endpoints.create_deployment(
            {"name": "blue", "endpoint_name": "ep-test",
             "code_configuration": {"code": str(project / "code"),
                                    "scoring_script": "missing.py"}})
    assert eps.endpoints.list_deployments("ep-test") == []
    eps.models.create("weights", project / "model")
    shown = eps.endpoints.create_deployment(  # a registered model, by Azure reference
        {"name": "blue", "endpoint_name": "ep-test", "model": "azureml:weights@latest",
         "code_configuration": {"code": str(project / "code"), "scoring_script": "score.py"}},
        all_traffic=True)
    assert shown["model"] == "weights:1" and shown["environment"] is None
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    assert eps.endpoints.invoke("ep-test", BODY, key=key).body.startswith('{"predictions"')


def test_a_run_slower_than_request_timeout_ms_is_a_504(eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True, timeout_ms=500)
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    status, body, answered = post(port, key=key, body=b'{"data": "slow"}')
    assert status == 504 and answered == "blue" and "request_timeout_ms" in body["error"]
    # the replica is back once run() returns
    wait_for(lambda: post(port, key=key)[0] == 200, what="answers again")


SCHEMA_SCORE = '''\
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType)

def init():
    pass

@input_schema("data", StandardPythonParameterType([1.0, 2.0]))
@input_schema("scale", StandardPythonParameterType(1.0))
@output_schema(StandardPythonParameterType({"total": 3.0}))
def run(data, scale=1.0):
    return {"total": sum(data) * scale}
'''


def test_a_run_decorated_with_inference_schema_gets_the_body_fields(
        eps: Workspace, project: Path) -> None:
    (project / "schema").mkdir()
    (project / "schema" / "score.py").write_text(SCHEMA_SCORE)
    port = eps.endpoints.create({"name": "ep-test"})["port"]
    eps.endpoints.create_deployment(
        {"name": "blue", "endpoint_name": "ep-test",
         "environment": {"pip_requirements": ["inference-schema==1.8"]},
         "code_configuration": {"code": str(project / "schema"), "scoring_script": "score.py"}},
        all_traffic=True)
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    assert post(port, key=key, body=b'{"data": [1, 2, 3]}')[1] == {"total": 6.0}
    assert post(port, key=key, body=b'{"data": [1, 2], "scale": 10}')[1] == {"total": 30.0}
    status, body, _ = post(port, key=key, body=b'{"scale": 2}')
    assert status == 400 and "'data'" in body["error"]
    assert post(port, key=key, body=b'[1, 2]')[0] == 400
    # swagger_uri: the schemas the decorators declare
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/swagger.json")
    doc = json.loads(conn.getresponse().read())
    conn.close()
    post_op = doc["paths"]["/score"]["post"]
    request = post_op["requestBody"]["content"]["application/json"]["schema"]
    assert set(request["properties"]) == {"data", "scale"}
    response = post_op["responses"]["200"]["content"]["application/json"]["schema"]
    assert "total" in json.dumps(response)
