"""MLflow no-code deployments, mirror traffic, `update -f` rolling, probes, swagger and
`start`, with real processes (replicas in the environment's venv, or this Python)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import ValidationError
from jupyter_mlws.jobs.runner import is_locked
from tests.endpoints.conftest import alive, wait_for
from tests.endpoints.test_endpoints import deploy, post


def test_an_mlflow_model_without_a_scoring_script_is_served_by_pyfunc(
        cli, eps: Workspace, mlflow_model, project: Path, yaml_files) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    path, model = mlflow_model
    eps.models.create("diabetes-mlflow", path, type="mlflow_model")
    (project / "nocode.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json"
        "\nname: blue\nendpoint_name: ep-test\nmodel: azureml:diabetes-mlflow:1\n"
        "instance_count: 1\nreadiness_probe:\n  initial_delay: 1\n  period: 1\n")
    cli("online-endpoint", "create", "-f", str(yaml_files("endpoint", "ep-test")))
    out = cli("online-deployment", "create", "-f", "nocode.yml", "--all-traffic", "-o", "json",
              stdout=True)
    view = json.loads(out)
    assert view["state"] == "Succeeded" and view["model"] == "diabetes-mlflow:1"
    rows = pd.DataFrame({"a": [5.0, 6.0], "b": [0.2, 0.4]})
    expected = [pytest.approx(v) for v in model.predict(rows)]
    # Azure's request shape: the predictions as a list
    azure = {"input_data": {"columns": ["a", "b"], "index": [0, 1], "data": [[5.0, 0.2],
                                                                              [6.0, 0.4]]}}
    (project / "azure.json").write_text(json.dumps(azure))
    assert json.loads(cli("online-endpoint", "invoke", "-n", "ep-test", "-r",
                          "azure.json")) == expected
    # MLflow's shapes: {"predictions": ...}, as `mlflow models serve` answers
    for body in ({"dataframe_split": {"columns": ["a", "b"], "data": [[5.0, 0.2], [6.0, 0.4]]}},
                 {"dataframe_records": [{"a": 5.0, "b": 0.2}, {"a": 6.0, "b": 0.4}]}):
        answer = eps.endpoints.invoke("ep-test", json.dumps(body))
        assert answer.ok and json.loads(answer.body) == {"predictions": expected}
    bad = eps.endpoints.invoke("ep-test", '{"rows": [1, 2]}')
    assert bad.status == 400 and "dataframe_split" in bad.body
    # lineage: `mlws model show` lists where it is deployed
    shown = json.loads(cli("model", "show", "diabetes-mlflow", "-o", "json"))
    assert [(d["endpoint"], d["deployment"]) for d in shown["deployments"]] == [
        ("ep-test", "blue")]


def test_mirror_traffic_copies_requests_and_discards_the_answers(
        cli, eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True)
    deploy(eps, yaml_files, "green")
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    with pytest.raises(ValidationError, match="at most 50%"):
        eps.endpoints.update_mirror_traffic("ep-test", "green=60")
    with pytest.raises(ValidationError, match="takes 100% of the live traffic"):
        eps.endpoints.update_mirror_traffic("ep-test", "blue=10")
    shown = json.loads(cli("online-endpoint", "update", "-n", "ep-test", "--mirror-traffic",
                           "green=50", "-o", "json"))
    assert shown["mirror_traffic"] == {"green": 50}
    answered = [post(port, key=key)[2] for _ in range(200)]
    assert set(answered) == {"blue"}  # the caller only ever gets the live deployment's answer
    def counted(n: int) -> int | None:
        """green's mirrored count once the status holds blue's first ``n`` requests."""
        blue = eps.endpoints.show_deployment("ep-test", "blue")
        return eps.endpoints.show_deployment("ep-test", "green")["mirrored_requests"] \
            if blue["requests"] >= n else None

    mirrored = wait_for(lambda: counted(200), what="the requests to be counted")
    assert 50 <= mirrored <= 150  # binomial(200, 0.5): far outside is a broken mirror
    # a request naming its deployment is not mirrored
    for _ in range(20):
        assert post(port, key=key, deployment="blue")[0] == 200
    assert wait_for(lambda: counted(220), what="the requests to be counted") == mirrored
    cli("online-endpoint", "update", "-n", "ep-test", "--mirror-traffic", "")
    assert eps.endpoints.show("ep-test")["mirror_traffic"] == {}
    # `update -f`: the endpoint's YAML, with its traffic and mirror traffic
    path = yaml_files("endpoint", "ep-test")
    path.write_text(path.read_text() + "description: v2\ntraffic:\n  blue: 100\n"
                    "mirror_traffic:\n  green: 20\n")
    shown = json.loads(cli("online-endpoint", "update", "-f", str(path), "-o", "json"))
    assert shown["description"] == "v2" and shown["mirror_traffic"] == {"green": 20}
    assert shown["traffic"] == {"blue": 100, "green": 0}
    path.write_text(path.read_text() + "compute: docker\n")
    with pytest.raises(ValidationError, match="cannot change"):
        eps.endpoints.update(path)
    assert eps.endpoints.show("ep-test")["runtime"] == "process"


def test_update_from_a_file_rolls_without_a_failed_request(
        cli, eps: Workspace, yaml_files, project: Path) -> None:  # type: ignore[no-untyped-def]
    port = eps.endpoints.create(yaml_files("endpoint", "ep-test"))["port"]
    deploy(eps, yaml_files, "blue", all_traffic=True, count=2)
    key = eps.endpoints.credentials("ep-test")["primaryKey"]
    path = yaml_files("deployment", "blue")
    path.write_text(path.read_text().replace("COLOR: blue", "COLOR: blue-v2"))
    failures: list[object] = []
    colors: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                status, body, _ = post(port, key=key)
                if status != 200:
                    failures.append((status, body))
                else:
                    colors.add(body["color"])
            except OSError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: colors, what="requests answered before the update")
        out = cli("online-deployment", "update", "-f", str(path), "-o", "json", stdout=True)
        assert json.loads(out)["generation"] == 2
        wait_for(lambda: "blue-v2" in colors, timeout=30, what="the new replicas to answer")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == [] and colors == {"blue", "blue-v2"}
    from jupyter_mlws.errors import NotFoundError

    with pytest.raises(NotFoundError):  # update does not create
        eps.endpoints.update_deployment(yaml_files("deployment", "purple"))


def test_a_replica_failing_its_liveness_probe_is_restarted(
        eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    eps.endpoints.create(yaml_files("endpoint", "ep-test"))
    path = yaml_files("deployment", "blue")
    path.write_text(path.read_text() + "liveness_probe:\n  initial_delay: 0\n  period: 1\n"
                    "  timeout: 1\n  failure_threshold: 2\n")
    view = eps.endpoints.create_deployment(path, all_traffic=True)
    pid = view["replicas"][0]["pid"]
    os.kill(pid, signal.SIGSTOP)  # hung: alive, but answering no probe
    wait_for(lambda: not alive(pid), timeout=60, what="the hung replica to be stopped")
    # the status file is rewritten each tick: wait for the one written after the restart,
    # not the last one written before it (which still shows the stopped replica ready)
    restarted = wait_for(lambda: (lambda v: v if v["replicas_ready"] == 1 and
                                  v["replicas"][0]["pid"] != pid else None)(
        eps.endpoints.show_deployment("ep-test", "blue")), timeout=60, what="a new replica")
    assert restarted["restarts"] >= 1
    assert "liveness probes in a row" in eps.endpoints.logs("ep-test", "blue")
    assert eps.endpoints.invoke("ep-test", '{"data": [1]}').ok


def test_swagger_uri_and_start_after_the_supervisor_died(
        cli, eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    eps.endpoints.create(yaml_files("endpoint", "ep-test"))
    deploy(eps, yaml_files, "blue", all_traffic=True)
    shown = json.loads(cli("online-endpoint", "show", "-n", "ep-test", "-o", "json"))
    conn = http.client.HTTPConnection("127.0.0.1", shown["port"], timeout=10)
    conn.request("GET", shown["swagger_uri"].split(str(shown["port"]), 1)[1])
    doc = json.loads(conn.getresponse().read())
    conn.close()
    assert "/score" in doc["paths"] and doc["openapi"].startswith("3.")
    pid = shown["supervisor_pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not is_locked(eps.endpoints.paths("ep-test").lock), what="the lock freed")
    started = json.loads(cli("online-endpoint", "start", "-o", "json"))
    assert started[0]["supervisor_restarted"] and started[0]["supervisor_pid"] != pid
    eps.endpoints.wait_deployment("ep-test", "blue", timeout=60)
    assert eps.endpoints.invoke("ep-test", '{"data": [1]}').ok
