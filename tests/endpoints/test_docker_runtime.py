"""Online endpoints on Docker: replicas are containers of the environment's cached image, with
the model mounted read-only, as a non-root user, published on 127.0.0.1 only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.endpoints.containers import ENDPOINT_LABEL
from jupyter_mlws.jobs.runner import is_locked
from tests.endpoints.conftest import alive, port_open, wait_for

pytestmark = pytest.mark.docker

# An Azure-style scoring script, as Azure's sklearn examples write it; "probe" asks the replica
# what it sees from inside its container.
SKLEARN_SCORE = '''\
import json, os
import joblib
import numpy as np

def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.pkl"))

def run(raw_data):
    data = json.loads(raw_data)
    if data.get("probe"):
        target = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "planted.txt")
        try:
            open(target, "w").close()
            writable = True
        except OSError:
            writable = False
        caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")]
        return {"uid": os.getuid(), "model_writable": writable, "cap_eff": caps[0],
                "model_dir": os.environ["AZUREML_MODEL_DIR"]}
    return model.predict(np.array(data["data"])).tolist()
'''

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: ep-docker
auth_mode: key
compute: docker
"""

DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: ep-docker
model:
  path: ./model
code_configuration:
  code: ./onlinescoring
  scoring_script: score.py
environment: azureml:MLWS-sklearn-1.9@latest
instance_type: Standard_DS3_v2
instance_count: 1
readiness_probe:
  initial_delay: 1
  period: 1
  failure_threshold: 120
"""


@pytest.fixture
def sklearn_project(project: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0, 0.0], [0.1, 0.2], [1.0, 1.0], [0.9, 1.1]],
                                     [0, 0, 1, 1])
    joblib.dump(model, project / "model" / "model.pkl")
    (project / "onlinescoring").mkdir()
    (project / "onlinescoring" / "score.py").write_text(SKLEARN_SCORE)
    (project / "endpoint.yml").write_text(ENDPOINT)
    (project / "blue.yml").write_text(DEPLOYMENT)
    (project / "sample-request.json").write_text('{"data": [[0.0, 0.1], [1.0, 0.95]]}')
    return project


def _containers(client, eps: Workspace) -> list:  # type: ignore[no-untyped-def]
    root = eps.endpoints.paths("ep-docker").root
    return client.containers.list(all=True, filters={"label": f"{ENDPOINT_LABEL}={root}"})


def test_an_azure_sklearn_score_py_serves_from_a_container_and_delete_leaves_nothing(
        cli, eps: Workspace, sklearn_project: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    cli("online-endpoint", "create", "-f", "endpoint.yml")
    out = cli("online-deployment", "create", "-f", "blue.yml", "--all-traffic", "-o", "json",
              stdout=True)
    shown = json.loads(out)  # (stdout alone: the build's log is on stderr)
    assert shown["state"] == "Succeeded" and shown["runtime"] == "docker"
    assert shown["image_id"].startswith("sha256:")
    assert any("containers of the environment's image" in n for n in shown["notes"])
    answer = json.loads(cli("online-endpoint", "invoke", "-n", "ep-docker", "--request-file",
                            "sample-request.json"))
    assert answer == [0, 1]
    # what the container prints is the deployment's log
    assert "replica 0 of blue: ready" in cli("online-deployment", "get-logs", "-e",
                                             "ep-docker", "-n", "blue")
    # inside: not root, no capabilities, the model folder is read-only
    inside = eps.endpoints.invoke("ep-docker", '{"probe": true}')
    seen = json.loads(inside.body)
    assert inside.ok and seen["uid"] != 0 and not seen["model_writable"]
    assert int(seen["cap_eff"], 16) == 0
    assert seen["model_dir"].startswith("/var/azureml-models/")
    # the container: labelled, its port published on 127.0.0.1 only, no new privileges
    [container] = _containers(docker_client, eps)
    attrs = container.attrs
    assert "no-new-privileges" in attrs["HostConfig"]["SecurityOpt"]
    bindings = [b for bs in attrs["HostConfig"]["PortBindings"].values() for b in bs]
    assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings)
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert not mounts[seen["model_dir"]]["RW"] and not mounts["/var/azureml-app"]["RW"]
    # lineage: the model and the environment know where they are deployed
    model_name = shown["model"].split(":")[0]
    assert "ep-docker" in cli("model", "show", model_name)
    env_shown = cli("env", "show", "MLWS-sklearn-1.9", "-o", "json")
    assert '"deployment": "blue"' in env_shown and shown["image_id"] in env_shown
    # delete: no container, no process, no open port
    status = json.loads(cli("online-endpoint", "show", "-n", "ep-docker", "-o", "json"))
    replica_port = eps.endpoints.show_deployment("ep-docker", "blue")["replicas"][0]["port"]
    cli("online-endpoint", "delete", "-n", "ep-docker", "--yes")
    assert _containers(docker_client, eps) == []
    assert not alive(status["supervisor_pid"])
    assert not port_open(status["port"]) and not port_open(replica_port)


def test_a_killed_container_is_restarted_and_leftovers_of_a_killed_supervisor_are_removed(
        eps: Workspace, sklearn_project: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    eps.endpoints.create(sklearn_project / "endpoint.yml")
    eps.endpoints.create_deployment(sklearn_project / "blue.yml", all_traffic=True)
    [first] = _containers(docker_client, eps)
    first.kill()
    view = wait_for(lambda: (lambda v: v if v["restarts"] >= 1 and v["replicas_ready"] == 1
                             else None)(eps.endpoints.show_deployment("ep-docker", "blue")),
                    timeout=120, what="the killed container to be replaced")
    assert view["state"] == "Succeeded"
    assert [c.id for c in _containers(docker_client, eps)] != [first.id]
    assert eps.endpoints.invoke("ep-docker", '{"data": [[1.0, 1.0]]}').body == "[1]"
    # the supervisor is killed: its container is left; `start` removes it and starts anew
    pid = eps.endpoints.show("ep-docker")["supervisor_pid"]
    left = {c.id for c in _containers(docker_client, eps)}
    os.kill(pid, 9)
    wait_for(lambda: not is_locked(eps.endpoints.paths("ep-docker").lock), what="the lock freed")
    [started] = eps.endpoints.start()
    log = eps.endpoints.paths("ep-docker").supervisor_log
    assert started["supervisor_restarted"], log.read_text()
    eps.endpoints.wait_deployment("ep-docker", "blue", timeout=120)
    now = {c.id for c in _containers(docker_client, eps)}
    assert len(now) == 1 and not (now & left)
    assert eps.endpoints.invoke("ep-docker", '{"data": [[0.0, 0.0]]}').body == "[0]"


def test_init_raising_in_a_container_fails_the_deployment_with_its_traceback(
        eps: Workspace, sklearn_project: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    from jupyter_mlws.errors import DeploymentFailedError

    (sklearn_project / "onlinescoring" / "score.py").write_text(
        "def init():\n    raise FileNotFoundError('weights.bin is missing')\n"
        "def run(raw_data):\n    return raw_data\n")
    eps.endpoints.create(sklearn_project / "endpoint.yml")
    with pytest.raises(DeploymentFailedError) as failed:
        eps.endpoints.create_deployment(sklearn_project / "blue.yml", all_traffic=True)
    assert "init() raised" in str(failed.value) and "weights.bin is missing" in str(failed.value)
    assert eps.endpoints.show("ep-docker")["traffic"] == {}
    wait_for(lambda: _containers(docker_client, eps) == [], what="no container left")


def test_a_no_code_mlflow_model_serves_from_an_image_of_its_own_conda_file(
        cli, eps: Workspace, project: Path, mlflow_model) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    path, model = mlflow_model
    eps.models.create("mlflow-docker", path, type="mlflow_model")
    (project / "endpoint.yml").write_text(ENDPOINT)
    (project / "nocode.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json"
        "\nname: blue\nendpoint_name: ep-docker\nmodel: azureml:mlflow-docker:1\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\n"
        "readiness_probe:\n  initial_delay: 1\n  period: 1\n  failure_threshold: 120\n")
    cli("online-endpoint", "create", "-f", "endpoint.yml")
    out = cli("online-deployment", "create", "-f", "nocode.yml", "--all-traffic", "-o", "json")
    shown = json.loads(out[out.index("\n{\n") + 1:])  # after the image's build log
    assert shown["state"] == "Succeeded" and shown["runtime"] == "docker"
    # the environment is the one MLflow saved with the model (its conda.yaml), as in Azure
    env = eps.environments.get_by_hash(shown["env_hash"])
    pinned = {str(r).split("==")[0].lower() for r in env.spec["conda_file"]["dependencies"][-1]["pip"]}
    assert {"mlflow", "scikit-learn"} <= pinned
    rows = pd.DataFrame({"a": [5.0, 6.0], "b": [0.2, 0.4]})
    body = {"input_data": {"columns": ["a", "b"], "index": [0, 1],
                           "data": [[5.0, 0.2], [6.0, 0.4]]}}
    answer = eps.endpoints.invoke("ep-docker", json.dumps(body))
    assert answer.ok, answer.body
    assert json.loads(answer.body) == [pytest.approx(v) for v in model.predict(rows)]
