"""``%deploy`` and ``%mlws list endpoints`` in a real IPython kernel, with real deployments (a
supervisor, a router on a real port, replica processes running an Azure-style ``score.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

from jupyter_mlws import Workspace
from jupyter_mlws.deploy_magics import deployment_spec, make_deploy_parser, model_ref
from jupyter_mlws.magics import _parse
from tests.endpoints.conftest import alive, endpoint_pids
from tests.server.test_endpoint_routes import CRASHING, SCORE
from tests.surface.test_magics import Kernel


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, shared_envs_dir: Path
          ) -> Iterator[tuple[Kernel, Workspace]]:
    root = tmp_path_factory.mktemp("deploy")
    (root / "home").mkdir()
    work = root / "proj"
    for folder, text in (("serving", SCORE), ("crashing", CRASHING)):
        (work / folder).mkdir(parents=True)
        (work / folder / "score.py").write_text(text)
    (root / "weights.json").write_text('{"w": 2.0, "b": 1.0}')
    ws = Workspace.init(root / ".mlws")
    ws.models.create("lin", root / "weights.json")
    env = {**os.environ, "HOME": str(root / "home"), "MLWS_WORKSPACE": str(ws.path),
           "MLWS_ENVS_DIR": str(shared_envs_dir)}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(work))
    kernel = Kernel(km, kc)
    try:
        kernel.ok("%load_ext jupyter_mlws")
        yield kernel, ws
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        pids: list[int] = []
        for ep in ws.store.list_endpoints():  # type: ignore[attr-defined]
            pids += endpoint_pids(ws, ep.name)
            with contextlib.suppress(Exception):
                ws.endpoints.delete(ep.name)
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        ws.close()


def printed(kernel: Kernel, code: str) -> dict:  # type: ignore[type-arg]
    """Run ``code`` (its last line prints one JSON object) and return that object."""
    out = kernel.ok(code).stdout.strip().splitlines()
    return json.loads(out[-1])  # type: ignore[no-any-return]


def test_deploy_line_parsing(tmp_path: Path) -> None:
    parser = make_deploy_parser()
    args = _parse(parser, f"iris:3 --endpoint ep-a --scoring-script {tmp_path}/src/score.py "
                          "--environment iris-train:2 --instance-count 2")
    spec = deployment_spec(args)
    assert spec["model"] == "iris:3" and spec["endpoint_name"] == "ep-a"
    assert spec["name"] == "blue" and spec["instance_count"] == 2
    assert spec["environment"] == "iris-train:2"
    assert spec["code_configuration"] == {"code": str(tmp_path / "src"),
                                          "scoring_script": "score.py"}
    args = _parse(parser, f"iris -e ep-a -d green --code {tmp_path} -s sub/score.py")
    spec = deployment_spec(args)
    assert spec["code_configuration"] == {"code": str(tmp_path), "scoring_script": "sub/score.py"}
    assert spec["name"] == "green" and "environment" not in spec
    assert model_ref("iris") == "iris@latest" and model_ref("azureml:iris:2") == "azureml:iris:2"


def test_deploy_returns_a_live_widget_with_a_test_box(setup: tuple[Kernel, Workspace]) -> None:
    kernel, ws = setup
    assert "No endpoints yet" in kernel.ok("%mlws list endpoints").stdout
    result = kernel.ok("w = %deploy lin:1 --endpoint ep-magic --scoring-script "
                       "serving/score.py --instance-count 2\nw")
    assert "Created endpoint ep-magic" in result.stdout
    assert any("EndpointMonitor(endpoint=ep-magic, blue=Succeeded)" in t
               for t in result.texts("execute_result"))
    assert any("Succeeded in" in t for t in result.texts())  # the live log's summary
    state = printed(kernel, "import json\nd = w.deployments[0]\nprint(json.dumps({"
                    "'state': d['state'], 'ready': d['replicas_ready'], "
                    "'traffic': w.endpoint['traffic'], 'uri': w.endpoint['scoring_uri'], "
                    "'title': w._title.value}))")
    assert state["state"] == "Succeeded" and state["ready"] == 2
    assert state["traffic"] == {"blue": 100}  # the first deployment takes all traffic
    assert state["uri"] in state["title"]

    answer = printed(kernel, "print(json.dumps(w.send('{\"data\": [1, 2]}')))")
    assert answer["status"] == 200 and answer["deployment"] == "blue"
    assert answer["json"]["predictions"] == [3.0, 5.0] and answer["json"]["color"] is None
    assert answer["latency_ms"] > 0
    shown = printed(kernel, "print(json.dumps(w._answer.value))")
    assert "200" in shown and "ms" in shown and "predictions" in shown

    # the log view follows: a line printed by run() shows up without asking
    followed = printed(kernel, """
import time
w.send('{"data": "marker-5521"}')
deadline = time.monotonic() + 30
while time.monotonic() < deadline and not any("marker-5521" in l for l in w.log_lines):
    time.sleep(0.1)
print(json.dumps({"lines": w.log_lines, "polls": w.polls}))""")
    assert any("run got marker-5521" in line for line in followed["lines"])
    assert any("init done" in line for line in followed["lines"])

    # a second deployment does not take traffic; the list shows both
    kernel.ok("g = %deploy lin --endpoint ep-magic --deployment green "
              "--scoring-script serving/score.py")
    assert ws.endpoints.show("ep-magic")["traffic"] == {"blue": 100}
    listed = kernel.ok("%mlws list endpoints")
    text = "".join(listed.texts("display_data")) + listed.stdout
    for needle in ("ep-magic", "blue", "green", "Succeeded", "100%", "0%", "lin:1", "2/2"):
        assert needle in text, (needle, text)
    green = printed(kernel, "print(json.dumps(g.send('{\"data\": [0]}', deployment='green')))")
    assert green["deployment"] == "green"
    # following stops by itself after follow_s; Refresh follows again
    stopped = printed(kernel, """
from jupyter_mlws.widgets.endpoint_monitor import EndpointMonitor
m = EndpointMonitor(w.ws, "ep-magic", "green", poll_s=0.05, follow_s=0.3)
deadline = time.monotonic() + 30
while time.monotonic() < deadline and m.following:
    time.sleep(0.05)
before = m.following
m.refresh()
print(json.dumps({"before": before, "after": m.following, "log": m.log_lines}))""")
    assert stopped == {"before": False, "after": True, "log": stopped["log"]}
    assert any("init done" in line for line in stopped["log"])
    kernel.ok("m.close(); w.close(); g.close()")
    assert printed(kernel, """
deadline = time.monotonic() + 30
while time.monotonic() < deadline and (m.following or w.following):
    time.sleep(0.05)
print(json.dumps([m.following, w.following]))""") == [False, False]


def test_deploy_errors_are_one_line(setup: tuple[Kernel, Workspace]) -> None:
    kernel, ws = setup
    kernel.fails("%deploy nope:1 --endpoint ep-err --scoring-script serving/score.py", "nope")
    assert "ep-err" not in [e.name for e in ws.store.list_endpoints()]  # type: ignore[attr-defined]
    kernel.fails("%deploy lin:1 --scoring-script serving/score.py", "%deploy",
                 "--endpoint")
    kernel.fails("%deploy lin:1 --endpoint ep-err --code serving", "--code needs")
    kernel.fails("%deploy lin:1 --endpoint ep-err --scoring-script missing/score.py",
                 "does not exist")
    kernel.fails("%deploy lin:1 --endpoint ep-err --scoring-script serving/score.py "
                 "--environment no-such-env", "no-such-env")
    line = kernel.fails("%deploy lin:1 --endpoint ep-err --deployment red "
                        "--scoring-script crashing/score.py", "Failed",
                        "weights.bin is missing")
    assert "traffic was not changed" in line
    assert ws.endpoints.show("ep-err")["traffic"] == {}
    assert ws.endpoints.show_deployment("ep-err", "red")["state"] == "Failed"


def test_deploy_an_mlflow_model_without_a_scoring_script(setup: tuple[Kernel, Workspace],
                                                         tmp_path: Path) -> None:
    """``%deploy MODEL`` with no --scoring-script: MLflow's pyfunc serves an mlflow_model in
    this kernel's interpreter (which has mlflow); Azure's ``input_data`` shape is answered."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    kernel, ws = setup
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.9, 0.3]})
    model = LinearRegression().fit(x, x["a"] + 2 * x["b"])
    mlflow.sklearn.save_model(model, str(tmp_path / "sk"), signature=infer_signature(x))
    ws.models.create("sk-magic", tmp_path / "sk", type="mlflow_model")

    # a model that is not an mlflow_model still needs a script: said before any endpoint
    kernel.fails("%deploy lin:1 --endpoint ep-nocode", "scoring script", "mlflow_model")
    assert "ep-nocode" not in [e.name for e in ws.store.list_endpoints()]  # type: ignore[attr-defined]

    result = kernel.ok("w = %deploy sk-magic --endpoint ep-nocode\nw")
    assert "Created endpoint ep-nocode" in result.stdout
    assert any("EndpointMonitor(endpoint=ep-nocode, blue=Succeeded)" in t
               for t in result.texts("execute_result"))
    shown = ws.endpoints.show_deployment("ep-nocode", "blue")
    assert shown["model"] == "sk-magic:1" and shown["traffic"] == 100
    rows = {"columns": ["a", "b"], "index": [0, 1], "data": [[5.0, 1.0], [2.0, 0.5]]}
    answer = printed(kernel, "import json\nprint(json.dumps(w.send(json.dumps("
                     f"{{'input_data': {rows!r}}}))))")
    assert answer["status"] == 200 and answer["deployment"] == "blue"
    expected = model.predict(pd.DataFrame(rows["data"], columns=rows["columns"]))
    assert answer["json"] == [pytest.approx(v) for v in expected]
    assert answer["json"] == [pytest.approx(7.0), pytest.approx(3.0)]
    kernel.ok("w.close()")
