"""A project folder with an Azure-style model, scoring scripts and YAML; a workspace whose
endpoints are deleted (and every process they started stopped) when the test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.endpoints.paths import read_json
from tests.helpers import cli_invoker

SCORE = '''\
import json, os
model = None

def init():
    global model
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "weights.json")
    with open(path) as f:
        model = json.load(f)
    print("init done:", os.environ.get("COLOR"), flush=True)

def run(raw_data):
    data = json.loads(raw_data)["data"]
    if data == "boom":
        raise ValueError("cannot score boom")
    if data == "slow":
        import time
        time.sleep(3)
    return {"predictions": [model["w"] * x + model["b"] for x in data],
            "color": os.environ.get("COLOR"), "pid": os.getpid()}
'''

CRASHING_SCORE = '''\
def init():
    print("loading a model that is not there", flush=True)
    raise FileNotFoundError("weights.bin is missing from the model folder")

def run(raw_data):
    return raw_data
'''

ENDPOINT_YAML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: {name}
auth_mode: key
"""

DEPLOYMENT_YAML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: {endpoint}
model:
  path: ./model
code_configuration:
  code: ./{code}
  scoring_script: score.py
environment:
  pip_requirements: ["six==1.16.0"]
instance_type: Standard_DS3_v2
instance_count: {count}
request_settings:
  request_timeout_ms: {timeout_ms}
readiness_probe:
  initial_delay: 1
  period: 1
  failure_threshold: 60
environment_variables:
  COLOR: {name}
"""


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def endpoint_pids(ws: Workspace, name: str) -> list[int]:
    """The supervisor's and the replicas' pids, as the supervisor reports them."""
    status = read_json(ws.endpoints.paths(name).status) or {}
    pids = [status["pid"]] if isinstance(status.get("pid"), int) else []
    for dep in (status.get("deployments") or {}).values():
        pids += [r["pid"] for r in dep.get("replicas") or [] if isinstance(r.get("pid"), int)]
    return pids


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "model").mkdir(parents=True)
    (root / "model" / "weights.json").write_text('{"w": 2.0, "b": 1.0}')
    for folder, text in (("code", SCORE), ("crashing", CRASHING_SCORE)):
        (root / folder).mkdir()
        (root / folder / "score.py").write_text(text)
    (root / "request.json").write_text('{"data": [1, 2, 3]}')
    return root


@pytest.fixture
def yaml_files(project: Path) -> Callable[..., Path]:
    def make(kind: str, name: str, *, endpoint: str = "ep-test", code: str = "code",
             count: int = 1, timeout_ms: int = 5000) -> Path:
        path = project / f"{kind}-{name}.yml"
        text = (ENDPOINT_YAML.format(name=name) if kind == "endpoint" else
                DEPLOYMENT_YAML.format(name=name, endpoint=endpoint, code=code, count=count,
                                       timeout_ms=timeout_ms))
        path.write_text(text)
        return path

    return make


@pytest.fixture
def eps(ws: Workspace) -> Iterator[Workspace]:
    """The workspace; every endpoint is deleted afterwards and no process of it is left."""
    yield ws
    pids = []
    for ep in ws.store.list_endpoints():  # type: ignore[attr-defined]
        pids += endpoint_pids(ws, ep.name)
        with contextlib.suppress(Exception):
            ws.endpoints.delete(ep.name)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cli(eps: Workspace, monkeypatch: pytest.MonkeyPatch,
        project: Path) -> Callable[..., str]:
    monkeypatch.setenv("MLWS_WORKSPACE", str(eps.path))
    monkeypatch.chdir(project)
    return cli_invoker(output=True)



def port_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    import socket

    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def mlflow_model(tmp_path: Path) -> tuple[Path, object]:
    """A small sklearn model saved by mlflow.sklearn.save_model, with a signature."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.9, 0.3]})
    y = 2 * x["a"] + x["b"]
    model = LinearRegression().fit(x, y)
    path = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(x, y))
    return path, model
