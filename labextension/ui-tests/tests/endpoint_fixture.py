"""Set up (``up``) or remove (``down``) the online endpoint the Endpoints browser test looks at.

``up`` registers a tiny model, writes an Azure-style ``score.py`` and deploys it as ``blue`` (all
traffic), ``green`` (none) and ``red`` (its ``init()`` raises: Failed) of endpoint
``ep-ui``, in the workspace of $MLWS_WORKSPACE (the one the test
server serves); ``down`` deletes the endpoint (its supervisor and replicas stop).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from jupyter_mlws import Workspace
from jupyter_mlws.errors import DeploymentFailedError

ENDPOINT = "ep-ui"
SCORE = '''\
import json, os
model = None

def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights.json")) as f:
        model = json.load(f)
    print("init done: model", model, flush=True)

def run(raw_data):
    data = json.loads(raw_data)["data"]
    if isinstance(data, str):
        print("run got", data, flush=True)
        return {"echo": data}
    return {"predictions": [model["w"] * x + model["b"] for x in data],
            "color": os.environ.get("COLOR")}
'''

CRASHING = '''\
def init():
    raise FileNotFoundError("weights.bin is missing from the model folder")

def run(raw_data):
    return raw_data
'''


def up(ws: Workspace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mlws-ui-endpoint-"))
    (folder / "weights.json").write_text(json.dumps({"w": 2.0, "b": 1.0}))
    (folder / "code").mkdir()
    (folder / "code" / "score.py").write_text(SCORE)
    model = ws.models.create("ui-linear", folder / "weights.json")
    ws.endpoints.create({"name": ENDPOINT})
    for name in ("blue", "green"):
        shown = ws.endpoints.create_deployment(
            {"name": name, "endpoint_name": ENDPOINT, "model": model.ref,
             "code_configuration": {"code": str(folder / "code"), "scoring_script": "score.py"},
             "environment_variables": {"COLOR": name}},
            all_traffic=name == "blue")
        print(json.dumps({"name": name, "state": shown["state"], "traffic": shown["traffic"]}))
    (folder / "crashing").mkdir()
    (folder / "crashing" / "score.py").write_text(CRASHING)
    try:
        ws.endpoints.create_deployment(
            {"name": "red", "endpoint_name": ENDPOINT, "model": model.ref,
             "code_configuration": {"code": str(folder / "crashing"),
                                    "scoring_script": "score.py"}})
    except DeploymentFailedError:
        print(json.dumps({"name": "red", "state": "Failed"}))


def down(ws: Workspace) -> None:
    if ENDPOINT in {e["name"] for e in ws.endpoints.list()}:
        ws.endpoints.delete(ENDPOINT)


def main(actions: dict[str, Callable[[Workspace], None]]) -> None:
    """Run the action named by the first argument on the workspace of $MLWS_WORKSPACE (shared
    by every ``*_fixture.py``)."""
    workspace = Workspace.open()
    try:
        actions[sys.argv[1]](workspace)
    finally:
        workspace.close()


if __name__ == "__main__":
    main({"up": up, "down": down})
