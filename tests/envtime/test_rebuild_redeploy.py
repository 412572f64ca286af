"""`mlws env rebuild NAME --redeploy`: an online deployment (Docker runtime) of a registered
model, whose environment's base was patched, is rolled to the rebuilt image while requests keep
coming - none fails, the replicas end in containers of the new image with the same packages,
and `env outdated` lists nothing afterwards.

The base patched is a throwaway copy of the default offline base (as in test_patch_rebuild)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from jupyter_mlws.environments.patching import patch_base
from tests.endpoints.conftest import alive, endpoint_pids, wait_for
from tests.endpoints.test_endpoints import post

pytestmark = pytest.mark.docker

REAL_BASE = "mlws/base-python:3.11-bookworm"

# Azure-style scoring script: init() loads the model from AZUREML_MODEL_DIR, run() scores; it
# also says which container answered and which six it imported (the replica's environment).
SCORE = '''\
import json, os, socket
from importlib.metadata import version

def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "weights.json")) as f:
        model = json.load(f)

def run(raw_data):
    data = json.loads(raw_data)["data"]
    return {"predictions": [model["w"] * x + model["b"] for x in data],
            "host": socket.gethostname(), "six": version("six")}
'''

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: ep-rebuild
auth_mode: key
compute: docker
"""

DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: ep-rebuild
model: azureml:linear:1
code_configuration:
  code: ./onlinescoring
  scoring_script: score.py
environment: azureml:served:1
instance_type: Standard_DS3_v2
instance_count: 2
readiness_probe:
  initial_delay: 1
  period: 1
  failure_threshold: 120
"""


@pytest.fixture
def base_copy(docker_client: Any) -> Iterator[str]:
    repository = f"mlws/base-redeploy-{uuid.uuid4().hex[:8]}"
    docker_client.images.get(REAL_BASE).tag(repository, "3.11-bookworm")
    yield f"{repository}:3.11-bookworm"
    for image in docker_client.images.list(name=repository):
        for tag in image.tags:
            if tag.startswith(repository + ":"):
                with contextlib.suppress(Exception):
                    docker_client.images.remove(tag, force=True)


@pytest.fixture
def served(ws: Workspace, tmp_path: Path, docker_client: Any) -> Iterator[Path]:
    """A project folder (model, scoring code, YAML); the endpoint and its images go after."""
    root = tmp_path / "proj"
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.json").write_text('{"w": 2.0, "b": 1.0}')
    (root / "onlinescoring").mkdir()
    (root / "onlinescoring" / "score.py").write_text(SCORE)
    (root / "endpoint.yml").write_text(ENDPOINT)
    (root / "deployment.yml").write_text(DEPLOYMENT)
    yield root
    pids = endpoint_pids(ws, "ep-rebuild")
    with contextlib.suppress(Exception):
        ws.endpoints.delete("ep-rebuild")
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    for record in ws.environments.build_history(ws.environments.get("served", 1)):
        with contextlib.suppress(Exception):
            docker_client.images.remove(record["image_id"], force=True)


def _image_of(docker_client: Any, container: str) -> str:
    return str(docker_client.containers.get(container).attrs["Image"])


def test_rebuild_redeploy_rolls_a_live_docker_deployment_without_a_failed_request(
        ws: Workspace, served: Path, base_copy: str, docker_client: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws.models.create("linear", served / "model", version=1)
    ws.environments.create("served", image=base_copy, pip_requirements=["six"], version=1)
    port = ws.endpoints.create(served / "endpoint.yml")["port"]
    first = ws.endpoints.create_deployment(served / "deployment.yml", all_traffic=True)
    old_image = first["image_id"]
    assert first["state"] == "Succeeded" and old_image
    assert {_image_of(docker_client, r["container"]) for r in first["replicas"]} == {old_image}
    key = ws.endpoints.credentials("ep-rebuild")["primaryKey"]
    status, body, _ = post(port, key=key)
    assert status == 200, body
    six_version = body["six"]

    patch_base(docker_client, base_copy, always=True)
    outdated = ws.environments.outdated()
    assert [o["environment"] for o in outdated] == ["served:1"]
    assert outdated[0]["deployments"] == ["ep-rebuild/blue"]

    failures: list[object] = []
    hosts: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                code, answer, _ = post(port, key=key)
            except OSError as exc:
                failures.append(exc)
                continue
            if code != 200 or answer.get("six") != six_version:
                failures.append((code, answer))
            else:
                hosts.add(answer["host"])

    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    monkeypatch.chdir(served.parent)  # not the project folder: the redeploy must not need it
    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: hosts, timeout=60, what="requests answered before the rebuild")
        result = CliRunner().invoke(main, ["env", "rebuild", "served:1", "--redeploy"])
        assert result.exit_code == 0, result.output
        after = ws.endpoints.show_deployment("ep-rebuild", "blue")
        new_hosts = {r["container"][:12] for r in after["replicas"]}
        wait_for(lambda: new_hosts & hosts, timeout=60, what="the new replicas to answer")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert "served:1: rebuilt from its lock; redeployed ep-rebuild/blue" in result.output
    new_image = ws.environments.lookup(ws.environments.get("served", 1)).image_id
    assert new_image != old_image
    assert after["state"] == "Succeeded" and after["generation"] == 2
    assert after["image_id"] == new_image and after["model"] == "linear:1"
    assert {_image_of(docker_client, r["container"]) for r in after["replicas"]} == {new_image}
    status, body, _ = post(port, key=key)
    assert status == 200 and body["host"] in new_hosts and body["six"] == six_version
    assert body["predictions"] == [3.0, 5.0, 7.0]
    assert ws.environments.outdated() == []
    shown = CliRunner().invoke(main, ["env", "outdated", "-o", "json"])
    assert shown.exit_code == 0 and json.loads(shown.output) == []
