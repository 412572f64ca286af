"""The README's "Deploying a model" loop, for real: train in a job on Docker, register the
model from the job's output, deploy it in the same environment's image, invoke, split traffic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mlws import Workspace

pytestmark = pytest.mark.docker

TRAIN = '''\
import argparse, os
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float)
parser.add_argument("--model-dir")
args = parser.parse_args()
X, y = load_iris(return_X_y=True)
clf = LogisticRegression(C=args.C, max_iter=500).fit(X, y)
joblib.dump(clf, os.path.join(args.model_dir, "model.pkl"))
print("trained with C =", args.C)
'''

SCORE = '''\
import json, os
import joblib
import numpy as np

def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.pkl"))

def run(raw_data):
    return model.predict(np.array(json.loads(raw_data)["data"])).tolist()
'''

ENV = "azureml:MLWS-sklearn-1.9@latest"


def test_train_register_deploy_invoke_split(eps: Workspace, tmp_path: Path,
                                            docker_client) -> None:  # type: ignore[no-untyped-def]
    for folder, name, text in (("src", "train.py", TRAIN), ("serve", "score.py", SCORE)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_text(text)
    eps.computes.create("box", type="docker")
    job = eps.jobs.submit_command(
        "python train.py --C ${{inputs.C}} --model-dir ${{outputs.model}}",
        code=tmp_path / "src", environment=ENV, compute="box", inputs={"C": 0.5},
        outputs={"model": {"type": "custom_model"}})
    done = eps.jobs.wait(job.id, timeout=600)
    assert done.status == "Completed", eps.jobs.logs(job.id)
    model = eps.models.create("iris-clf", path=f"mlws://jobs/{job.id}/outputs/model")
    eps.endpoints.create({"name": "iris-ep", "compute": "azureml:box"})
    spec = {"name": "blue", "endpoint_name": "iris-ep",
            "model": f"azureml:iris-clf:{model.version}", "environment": ENV,
            "code_configuration": {"code": str(tmp_path / "serve"),
                                   "scoring_script": "score.py"}}
    blue = eps.endpoints.create_deployment(spec, all_traffic=True)
    assert blue["runtime"] == "docker" and blue["env_hash"] == done.env_hash
    answer = eps.endpoints.invoke("iris-ep", '{"data": [[5.1, 3.5, 1.4, 0.2], '
                                             '[6.7, 3.0, 5.2, 2.3]]}')
    assert answer.ok and json.loads(answer.body) == [0, 2]
    eps.endpoints.create_deployment({**spec, "name": "green"})
    shown = eps.endpoints.update_traffic("iris-ep", "blue=90 green=10")
    assert shown["traffic"] == {"blue": 90, "green": 10}
    green = eps.endpoints.invoke("iris-ep", '{"data": [[5.1, 3.5, 1.4, 0.2]]}',
                                 deployment="green")
    assert green.deployment == "green" and green.body == "[0]"
    lineage = eps.describe(eps.models.get("iris-clf", model.version))["deployments"]
    assert sorted(d["deployment"] for d in lineage) == ["blue", "green"]
