"""Jobs that log with MLflow, as Azure ML training scripts do: their metrics (with steps),
parameters and artifacts land in the job's record, live, with no tracking server.

Real MLflow in real job processes (a venv built from an Azure-shaped environment YAML, the
current interpreter, a notebook kernel, a container). The Docker test needs the engine and the
base image: with CI set and either missing it fails, elsewhere it is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from jupyter_mlws import Workspace
from jupyter_mlws.jobs.model import JobStatus
from tests.helpers import make_notebook

SPECS = Path(__file__).resolve().parents[1] / "azure" / "specs"

pytestmark = pytest.mark.timeout(900)



def _wait_for(condition: Callable[[], object], what: str, ws: Workspace, job_id: str,
              timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if ws.jobs.get(job_id).done:
            raise AssertionError(f"the job ended before {what}: {ws.jobs.logs(job_id)[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _check_training_job(mlws: Callable[..., Result], ws: Workspace, job_id: str,
                        tmp_path: Path) -> None:
    """What tests/azure/specs/mlflow/src/main.py logged, as `job show` and the API see it."""
    metrics = ws.jobs.metrics(job_id)
    loss = [(m.step, round(m.value, 4)) for m in metrics if m.key == "loss"]
    assert loss == [(0, 1.0), (1, 0.5), (2, 0.3333)]
    values = {m.key: m.value for m in metrics}
    assert values["num_samples"] == 40 and values["num_features"] == 2
    assert values["epochs_run"] == 3 and 0.0 <= values["accuracy"] <= 1.0
    assert values["fold-1/accuracy"] == 0.5  # the nested run, under its name
    assert any(k.startswith("training_") for k in values), values  # from autolog
    params = ws.jobs.params(job_id)
    assert params["test_train_ratio"] == "0.25"
    assert params["C"] == "0.5"  # autolog logs the estimator's parameters
    assert params["fold-1/fold"] == "1"

    shown = json.loads(mlws("job", "show", job_id, "-o", "json").stdout)
    assert {m["key"] for m in shown["metrics"]} >= {"loss", "accuracy", "fold-1/accuracy"}
    assert shown["params"]["test_train_ratio"] == "0.25"
    assert "mlflow/summary.txt" in shown["artifacts"]
    assert any(a.startswith("mlflow/models/") and a.endswith("/MLmodel")
               for a in shown["artifacts"]), shown["artifacts"]  # the autologged model
    table = mlws("job", "show", job_id).stdout
    assert "accuracy" in table and "mlflow/summary.txt" in table

    got = Path(mlws("job", "download", job_id, "--dest", str(tmp_path / "dl")).stdout.strip())
    assert (got / "mlflow" / "summary.txt").read_text().startswith("classes: ")


def test_azure_training_script_logs_to_the_job_on_local(mlws, cli_ws: Workspace,  # type: ignore[no-untyped-def]
                                                        tmp_path: Path) -> None:
    mlws("env", "create", "-f", str(SPECS / "mlflow" / "environment.yml"))
    out = mlws("job", "create", "-f", str(SPECS / "command-mlflow.yml"), "--wait", "-o", "json")
    job = json.loads(out.stdout)
    assert job["status"] == "Completed", cli_ws.jobs.logs(job["id"])[-3000:]
    assert job["compute"] == "local"
    _check_training_job(mlws, cli_ws, job["id"], tmp_path)


def test_azure_training_script_logs_to_the_job_in_docker(mlws, cli_ws: Workspace,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    from jupyter_mlws.docker_engine import docker_client

    try:
        docker_client().images.get("mlws/base-python:3.11-bookworm")
    except Exception as exc:  # noqa: BLE001 - any reason means: no engine or image here
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the Docker engine and base image: {exc}")
        pytest.skip(f"no Docker engine or base image here: {exc}")
    cli_ws.computes.create("box", type="docker", max_concurrent_jobs=1, cpus=1, memory="2g")
    # the same packages on the offline Debian base, under the name the job YAML uses
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    shutil.copy(SPECS / "mlflow" / "conda.yml", env_dir / "conda.yml")
    spec = (SPECS / "mlflow" / "environment-docker.yml").read_text()
    (env_dir / "env.yml").write_text(spec.replace("name: sklearn-mlflow-docker",
                                                  "name: sklearn-mlflow"))
    mlws("env", "create", "-f", str(env_dir / "env.yml"))
    out = mlws("job", "create", "-f", str(SPECS / "command-mlflow.yml"), "--compute", "box",
               "--wait", "-o", "json")
    job = json.loads(out.stdout)
    assert job["status"] == "Completed", cli_ws.jobs.logs(job["id"])[-3000:]
    assert job["compute"] == "box"
    _check_training_job(mlws, cli_ws, job["id"], tmp_path)


LIVE = """
import pathlib, sys, time
import mlflow

with mlflow.start_run():
    mlflow.log_param("phase", "warmup")
    mlflow.log_metric("progress", 0.25, step=1)
    go = pathlib.Path(sys.argv[1])
    deadline = time.monotonic() + 300
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("the test never said go")
        time.sleep(0.1)
    mlflow.log_metric("progress", 1.0, step=2)
"""


def test_a_metric_shows_while_the_job_runs(cli_ws: Workspace, tmp_path: Path) -> None:
    code = tmp_path / "live"
    code.mkdir()
    (code / "live.py").write_text(LIVE)
    go = tmp_path / "go"
    job = cli_ws.jobs.submit_command(f"python live.py {go}", code=code)
    _wait_for(lambda: any(m.key == "progress" for m in cli_ws.jobs.detail(job.id).metrics),
              "the first metric", cli_ws, job.id)
    assert cli_ws.jobs.get(job.id).status == JobStatus.RUNNING  # still waiting for the go
    assert cli_ws.jobs.params(job.id)["phase"] == "warmup"
    go.touch()
    done = cli_ws.jobs.wait(job.id, timeout=240)
    assert done.status == "Completed", cli_ws.jobs.logs(job.id)[-3000:]
    assert [(m.step, m.value) for m in cli_ws.jobs.metrics(job.id)
            if m.key == "progress"] == [(1, 0.25), (2, 1.0)]


def test_a_notebook_job_logging_with_mlflow(cli_ws: Workspace, tmp_path: Path) -> None:
    nb = make_notebook(
        tmp_path / "code" / "mlflow.ipynb",
        "import mlflow\nmlflow.log_param('alpha', alpha)",
        "for i in range(3):\n    mlflow.log_metric('nb_loss', 1.0 / (i + 1), step=i)",
        parameters="alpha = 0.1")
    job = cli_ws.jobs.submit_notebook(nb, {"alpha": 0.7})
    job = cli_ws.jobs.wait(job.id, timeout=240)
    assert job.status == "Completed", cli_ws.jobs.logs(job.id)[-3000:]
    assert cli_ws.jobs.params(job.id)["alpha"] in (0.7, "0.7")
    assert [(m.step, round(m.value, 2)) for m in cli_ws.jobs.metrics(job.id)
            if m.key == "nb_loss"] == [(0, 1.0), (1, 0.5), (2, 0.33)]


OWN_STORE = """
import mlflow
with mlflow.start_run():
    mlflow.log_metric("mine", 1.0)
"""


def test_a_job_with_its_own_tracking_uri_keeps_it(cli_ws: Workspace, tmp_path: Path) -> None:
    code = tmp_path / "own"
    code.mkdir()
    (code / "own.py").write_text(OWN_STORE)
    store = tmp_path / "own-store"
    job = cli_ws.jobs.submit_command(
        "python own.py", code=code,
        environment_variables={"MLFLOW_TRACKING_URI": store.as_uri(),
                               "MLFLOW_ALLOW_FILE_STORE": "true"})
    job = cli_ws.jobs.wait(job.id, timeout=240)
    assert job.status == "Completed", cli_ws.jobs.logs(job.id)[-3000:]
    assert list(store.glob("*/*/metrics/mine")), "the job did not log to its own store"
    assert cli_ws.jobs.metrics(job.id) == []  # the workspace did not redirect it
    assert not (cli_ws.jobs.paths(job.id).run / "mlruns").exists()


PLANT = """
import os, sys
import mlflow

secret = sys.argv[1]
secret_dir = os.path.dirname(secret)
with mlflow.start_run() as run:
    mlflow.log_metric("real", 1.0)
    mlflow.log_param("real_param", "yes")
    here = run.info.artifact_uri.replace("file://", "")
    run_dir = os.path.dirname(here)
    os.symlink(secret, os.path.join(run_dir, "metrics", "stolen"))
    os.symlink(secret, os.path.join(run_dir, "params", "leak"))
    os.symlink(secret_dir, os.path.join(run_dir, "metrics", "linked_folder"))
    os.makedirs(here, exist_ok=True)
    os.symlink(secret, os.path.join(here, "leak.txt"))
    os.symlink(secret_dir, os.path.join(here, "leak_dir"))
    # a whole run folder (and an experiment) that is a link to the outside
    fake = os.path.join(secret_dir, "fake_run")
    exp_dir = os.path.dirname(run_dir)
    os.symlink(fake, os.path.join(exp_dir, "f" * 32))
    os.symlink(os.path.join(secret_dir, "fake_exp"), os.path.join(os.path.dirname(exp_dir), "7"))
"""


def test_links_planted_in_the_mlflow_store_are_not_followed(mlws, cli_ws: Workspace,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    for folder in (outside / "fake_run" / "metrics", outside / "fake_run" / "artifacts",
                   outside / "fake_exp" / ("e" * 32) / "metrics"):
        folder.mkdir(parents=True)
    secret = outside / "secret"
    secret.write_text("1700000000000 42.0 0\n")
    (outside / "stolen_value").write_text("1700000000000 43.0 0\n")
    (outside / "fake_run" / "metrics" / "fake").write_text("1700000000000 44.0 0\n")
    (outside / "fake_run" / "artifacts" / "secret.txt").write_text("top secret")
    (outside / "fake_exp" / ("e" * 32) / "metrics" / "fake").write_text("1700000000000 45.0 0\n")
    code = tmp_path / "plant"
    code.mkdir()
    (code / "plant.py").write_text(PLANT)
    job = cli_ws.jobs.submit_command(f"python plant.py {secret}", code=code)
    job = cli_ws.jobs.wait(job.id, timeout=240)
    assert job.status == "Completed", cli_ws.jobs.logs(job.id)[-3000:]

    assert [(m.key, m.value) for m in cli_ws.jobs.metrics(job.id)] == [("real", 1.0)]
    assert cli_ws.jobs.params(job.id) == {"real_param": "yes"}
    shown = json.loads(mlws("job", "show", job.id, "-o", "json").stdout)
    assert not [a for a in shown["artifacts"] if "leak" in a or "secret" in a], shown
    got = Path(mlws("job", "download", job.id, "--dest", str(tmp_path / "dl")).stdout.strip())
    copied = [p for p in got.rglob("*") if "leak" in p.name or "secret" in p.name]
    assert copied == []


def test_the_job_sees_the_workspace_store_and_not_the_hosts_run(cli_ws: Workspace, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    # a run id or experiment of the submitting shell must not leak into the job
    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "host-store").as_uri())
    code = tmp_path / "env"
    code.mkdir()
    (code / "env.py").write_text(
        "import json, os\n"
        "print(json.dumps({k: os.environ.get(k) for k in "
        "('MLFLOW_TRACKING_URI', 'MLFLOW_RUN_ID', 'MLFLOW_ALLOW_FILE_STORE')}))\n")
    job = cli_ws.jobs.submit_command(f"{sys.executable} env.py", code=code)
    job = cli_ws.jobs.wait(job.id, timeout=240)
    assert job.status == "Completed", cli_ws.jobs.logs(job.id)[-3000:]
    line = [x for x in cli_ws.jobs.logs(job.id).splitlines() if x.startswith("{")][-1]
    seen = json.loads(line)
    assert seen == {"MLFLOW_TRACKING_URI": "../run/mlruns", "MLFLOW_RUN_ID": None,
                    "MLFLOW_ALLOW_FILE_STORE": "true"}  # from the code folder, see mlflow_store
