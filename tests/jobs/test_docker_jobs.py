"""Jobs on the ``docker`` compute: containers from the environment's cached image.

Needs a real Docker engine and the base image (``scripts/test.sh`` starts and makes both). When
CI is set and the engine is missing, these tests fail instead of skipping.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from tests.jobs.test_leftovers import LOOP, _kill_runner
from tests.jobs.test_notebook_jobs import wait_for


@pytest.fixture(scope="module")
def engine() -> object:
    from jupyter_mlws.docker_engine import docker_client
    from jupyter_mlws.errors import DockerUnavailableError

    try:
        client = docker_client()
        client.images.get("mlws/base-python:3.11-bookworm")
    except (DockerUnavailableError, Exception) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the Docker engine and base image: {exc}")
        pytest.skip(f"no Docker engine or base image here: {exc}")
    return client


@pytest.fixture
def dws(jws: Workspace, engine: object) -> Workspace:
    jws.computes.create("box", type="docker", max_concurrent_jobs=2, cpus=1, memory="1g")
    return jws


def test_notebook_job_in_a_container(dws: Workspace, notebook) -> None:
    nb = notebook(
        "import sys, os, json\nfrom jupyter_mlws import run\n"
        "run.log_metric('acc', 0.9)\n"
        "(run.output_path('info') / 'info.json').write_text(json.dumps("
        "{'exe': sys.executable, 'n': n, 'container': os.path.exists('/.dockerenv')}))",
        parameters="n = 1")
    job = dws.jobs.submit_notebook(nb, {"n": 4}, compute="box",
                                   environment="MLWS-python-3.11-minimal")
    done = dws.jobs.wait(job.id, timeout=600)
    assert done.status == "Completed", dws.jobs.logs(job.id)
    info = json.loads((dws.jobs.paths(job.id).outputs / "info" / "info.json").read_text())
    assert info == {"exe": "/opt/mlws/venv/bin/python3", "n": 4, "container": True} or (
        info["container"] and info["n"] == 4)
    assert [m.value for m in dws.jobs.metrics(job.id)] == [0.9]
    assert done.image and done.image.startswith("mlws/mlws_")
    assert "preparing the image" in dws.jobs.logs(job.id)


def test_command_job_inputs_are_read_only_and_limits_apply(dws: Workspace,
                                                          tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "x.txt").write_text("hello")
    job = dws.jobs.submit_command(
        "cat ${{inputs.d}}/x.txt > ${{outputs.o}}/copy.txt; "
        "touch ${{inputs.d}}/new.txt 2>/dev/null && echo WRITABLE || echo READONLY; "
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max 2>/dev/null || true",
        compute="box", inputs={"d": {"type": "uri_folder", "path": str(data)}},
        outputs={"o": {"type": "uri_folder"}})
    done = dws.jobs.wait(job.id, timeout=300)
    assert done.status == "Completed", dws.jobs.logs(job.id)
    log = dws.jobs.logs(job.id)
    assert "READONLY" in log and not (data / "new.txt").exists()
    assert (dws.jobs.paths(job.id).outputs / "o" / "copy.txt").read_text() == "hello"
    if "max" in log:  # cgroup v2: the limits are visible inside
        assert str(1024**3) in log and "100000" in log


def test_cancel_a_container_job(dws: Workspace) -> None:
    from tests.jobs.test_notebook_jobs import wait_for

    job = dws.jobs.submit_command("echo started; sleep 120", compute="box")
    wait_for(lambda: "started" in dws.jobs.logs(job.id), timeout=300)
    dws.jobs.cancel(job.id)
    assert dws.jobs.wait(job.id, timeout=60).status == "Canceled"
    import docker

    left = docker.from_env().containers.list(all=True, filters={"label": f"org.mlws.job={job.id}"})
    assert left == []


def test_docker_engine_down_fails_the_job_in_preparing(jws: Workspace,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    jws.computes.create("nowhere", type="docker")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    job = jws.jobs.submit_command("echo hi", compute="nowhere")
    done = jws.jobs.wait(job.id, timeout=120)
    assert done.status == "Failed"
    assert "Docker engine" in (done.error or "")
    assert [e.status for e in jws.jobs.events(job.id)][-2:] == ["Preparing", "Failed"]


def _containers(engine: object, job_id: str) -> list[object]:
    return engine.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": f"org.mlws.job={job_id}"})


def _container_log_longer_than(container: object, size: int) -> bool:
    container.reload()  # type: ignore[attr-defined]
    return len(container.logs()) > size  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["reap", "cancel"])
def test_a_container_whose_runner_died_is_stopped_and_removed(
        dws: Workspace, engine: object, how: str) -> None:
    job = dws.jobs.submit_command(LOOP, compute="box")
    try:
        wait_for(lambda: "tick 2" in dws.jobs.logs(job.id), timeout=300)
        _kill_runner(dws, job.id)
        [container] = _containers(engine, job.id)
        log = dws.jobs.paths(job.id).job_log
        size = log.stat().st_size
        wait_for(lambda: _container_log_longer_than(container, size + 20), timeout=30)
        assert container.status == "running"  # type: ignore[attr-defined]
        if how == "reap":
            assert dws.jobs.reap_orphans() == [job.id]
            assert dws.jobs.get(job.id).status == "Failed"
        else:
            assert dws.jobs.cancel(job.id).status == "Canceled"
        assert _containers(engine, job.id) == []
        assert log.stat().st_size > size + 20  # what it printed after the runner died is kept
    finally:
        for left in _containers(engine, job.id):
            left.remove(force=True)  # type: ignore[attr-defined]


def test_fast_containers_never_lose_their_output(dws: Workspace, engine: object) -> None:
    """20 quick containers in a row: each job's log holds what it printed, and every container
    is removed by the time its job has ended."""
    jobs = [dws.jobs.submit_command(f"echo MARK_{i}; echo ERR_{i} >&2", compute="box")
            for i in range(20)]
    for i, job in enumerate(jobs):
        done = dws.jobs.wait(job.id, timeout=600)
        log = dws.jobs.logs(job.id)
        assert done.status == "Completed", log
        assert f"MARK_{i}\n" in log and f"ERR_{i}\n" in log, log
        assert _containers(engine, job.id) == []
