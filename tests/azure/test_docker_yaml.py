"""Azure ML YAML on a ``docker`` compute (``compute_map`` sends the cloud name there): the
``./outputs`` and ``./logs`` links and a ``uri_file`` output work inside the container.

Needs a real Docker engine and the base image; when CI is set and they are missing, it fails.
"""

from __future__ import annotations

import os

import pytest

from jupyter_mlws import Workspace
from tests.azure.test_command_yaml import run_spec, set_compute_map


@pytest.fixture
def docker_compute(cli_ws: Workspace) -> str:
    from jupyter_mlws.docker_engine import docker_client

    try:
        docker_client().images.get("mlws/base-python:3.11-bookworm")
    except Exception as exc:  # noqa: BLE001 - any reason means: no engine or image here
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the Docker engine and base image: {exc}")
        pytest.skip(f"no Docker engine or base image here: {exc}")
    cli_ws.computes.create("box", type="docker", max_concurrent_jobs=1, cpus=1, memory="1g")
    return "box"


def test_command_yaml_on_a_docker_compute_keeps_outputs_and_logs(mlws, cli_ws: Workspace,  # type: ignore[no-untyped-def]
                                                                 docker_compute: str) -> None:
    from tests.azure.conftest import SPECS

    mlws("data", "create", "-n", "iris-registered", "-p", str(SPECS / "data" / "iris.csv"),
         "-t", "uri_file")
    set_compute_map(cli_ws, {"gpu-cluster": docker_compute})
    job, err = run_spec(mlws, "command-io.yml")
    assert job["status"] == "Completed", cli_ws.jobs.logs(job["id"])
    assert job["compute"] == docker_compute and "runs on 'box'" in err
    paths = cli_ws.jobs.paths(job["id"])
    assert (paths.outputs / "extra.txt").read_text() == "kept as an artifact"
    assert (paths.logs / "user" / "train.log").read_text() == "epoch 1 done\n"
    assert paths.outputs.joinpath("metrics").is_file()
