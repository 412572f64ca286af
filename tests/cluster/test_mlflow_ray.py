"""A script logging with MLflow on a real two-node Ray cluster: its metrics (with steps),
parameters and artifacts land in the job's record, read from the shared run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main

pytestmark = pytest.mark.timeout(300)

TRAIN = """
import os
import mlflow

mlflow.log_param("node", os.uname().nodename)
for epoch in range(3):
    mlflow.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
with open("summary.txt", "w") as f:
    f.write("trained on ray")
mlflow.log_artifact("summary.txt")
mlflow.set_tag("where", "ray")
with mlflow.start_run(run_name="trial-1", nested=True):
    mlflow.log_metric("score", 0.9)
mlflow.end_run()
"""


def test_mlflow_metrics_params_and_artifacts_from_a_ray_job(rws: Workspace, tmp_path: Path
                                                            ) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(TRAIN)
    job = rws.jobs.submit_command("python train.py", code=code, compute="ray-worker")
    job = rws.jobs.wait(job.id, timeout=240)
    assert job.status == "Completed", rws.jobs.logs(job.id)[-3000:]

    assert [(m.step, round(m.value, 2)) for m in rws.jobs.metrics(job.id)
            if m.key == "loss"] == [(0, 1.0), (1, 0.5), (2, 0.33)]
    assert {m.key: m.value for m in rws.jobs.metrics(job.id)}["trial-1/score"] == 0.9
    assert rws.jobs.params(job.id)["node"]
    result = CliRunner().invoke(main, ["job", "show", job.id, "-w", str(rws.path), "-o", "json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert "mlflow/summary.txt" in shown["artifacts"]
    assert {m["key"] for m in shown["metrics"]} == {"loss", "trial-1/score"}
