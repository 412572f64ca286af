"""Notebook and command jobs on a real two-node Ray cluster, through the Ray Jobs REST API."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.errors import (
    CondaTranslationError,
    MlwsError,
    UnsupportedEnvironmentError,
    ValidationError,
)
from tests.helpers import make_notebook

from .conftest import HEAD_IP, TOKEN_ENV, WORKER_IP, RayCluster, _unavailable

pytestmark = pytest.mark.timeout(300)

#: The address this process uses to reach the head (UDP connect sends no packet).
NODE_IP = (
    "import socket\n"
    "_s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"_s.connect(({HEAD_IP!r}, 9))\n"
    "node_ip = _s.getsockname()[0]\n"
)


def _logs(ws: Workspace, job_id: str) -> str:
    return ws.jobs.logs(job_id)[-4000:]


def test_notebook_with_parameters_runs_on_the_worker(rws: Workspace, ray_cluster: RayCluster,
                                                     tmp_path: Path) -> None:
    nb = make_notebook(
        tmp_path / "code" / "params.ipynb",
        NODE_IP + "from jupyter_mlws import run\nrun.log_param('node_ip', node_ip)",
        "run.log_metric('double', x * 2)\nprint('hello', name, 'from', node_ip)",
        parameters="x = 1\nname = 'local'")
    job = rws.jobs.submit_notebook(nb, {"x": 21, "name": "ray"}, compute="ray-worker")
    job = rws.jobs.wait(job.id, timeout=180)
    assert job.status == "Completed", _logs(rws, job.id)

    assert rws.jobs.params(job.id)["node_ip"] == WORKER_IP
    assert rws.jobs.params(job.id)["x"] == 21
    assert [(m.key, m.value) for m in rws.jobs.metrics(job.id)] == [("double", 42.0)]
    out = rws.jobs.paths(job.id).notebook_out.read_text()
    assert f"hello ray from {WORKER_IP}" in out
    assert f"Ray: RUNNING on node {WORKER_IP}" in rws.jobs.logs(job.id)

    info = ray_cluster.job(job.id)  # the workspace id is the Ray submission id
    assert info["submission_id"] == job.id and info["status"] == "SUCCEEDED"
    assert info["driver_agent_http_address"].startswith(f"http://{WORKER_IP}:")
    # the job info does not echo entrypoint resources; the prepare log says what was asked
    assert "resources={'worker': 1.0}" in rws.jobs.logs(job.id)
    assert info["metadata"]["mlws_job_id"] == job.id
    assert info["metadata"]["mlws_workspace"] == str(rws.path)

    # the token went only into request headers: nothing in the workspace holds it
    if ray_cluster.token:
        for path in rws.path.rglob("*"):
            if path.is_file():
                assert ray_cluster.token.encode() not in path.read_bytes(), path


def test_failing_notebook_fails_with_the_cell_error(rws: Workspace, ray_cluster: RayCluster,
                                                   tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "code" / "bad.ipynb", "x = 1",
                       "raise ValueError('boom on the cluster')")
    job = rws.jobs.wait(rws.jobs.submit_notebook(nb, compute="ray-worker").id, timeout=180)
    assert job.status == "Failed"
    assert "cell 1 failed: ValueError: boom on the cluster" in (job.error or "")
    assert ray_cluster.job(job.id)["status"] == "FAILED"


def test_cancel_stops_the_ray_job_and_its_kernel(rws: Workspace, ray_cluster: RayCluster,
                                                 tmp_path: Path) -> None:
    nb = make_notebook(
        tmp_path / "code" / "slow.ipynb",
        "import os, time\nfrom pathlib import Path\n"
        "Path(os.environ['MLWS_RUN_DIR'], 'kernel.pid').write_text(str(os.getpid()))",
        "for i in range(1000):\n    print('tick', i, flush=True)\n    time.sleep(0.2)")
    job = rws.jobs.submit_notebook(nb, compute="ray-worker")
    for line in rws.jobs.stream(job.id):
        if line.startswith("tick"):
            break
    pid = int((rws.jobs.paths(job.id).run / "kernel.pid").read_text())
    assert rws.jobs.get(job.id).status == "Running"

    rws.jobs.cancel(job.id)
    job = rws.jobs.wait(job.id, timeout=60)
    assert job.status == "Canceled", _logs(rws, job.id)
    assert ray_cluster.job(job.id)["status"] == "STOPPED"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)  # the worker's namespace shares this machine's process ids
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the kernel (pid {pid}) outlived the canceled Ray job")


def test_resources_no_node_has_fail_in_preparing_or_wait_and_cancel(
        rws: Workspace, ray_cluster: RayCluster, tmp_path: Path) -> None:
    token = {"token_env": TOKEN_ENV} if ray_cluster.token else {}
    shared = {"shared_paths": [str(tmp_path)], **token}
    rws.computes.create("gpus", type="ray", address=ray_cluster.address,
                        settings={**shared, "resources": {"big_gpu": 1}})
    job = rws.jobs.wait(rws.jobs.submit_command("echo hi", compute="gpus").id, timeout=60)
    assert job.status == "Failed"
    assert "No node of the Ray cluster" in (job.error or "")
    assert f"{WORKER_IP}: CPU=1, worker=1" in (job.error or "")

    # an autoscaling cluster may add such a node: the job waits (Ray PENDING) until canceled
    rws.computes.create("scaling", type="ray", address=ray_cluster.address,
                        settings={**shared, "resources": {"big_gpu": 1}, "autoscaling": True})
    job = rws.jobs.submit_command("echo hi", compute="scaling")
    deadline = time.monotonic() + 60
    while "Ray: PENDING" not in rws.jobs.logs(job.id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rws.jobs.get(job.id).status == "Preparing"
    t0 = time.monotonic()
    rws.jobs.cancel(job.id)
    job = rws.jobs.wait(job.id, timeout=60)
    assert time.monotonic() - t0 < 15
    assert job.status == "Canceled", _logs(rws, job.id)
    # Ray queues the stop until the job starts; the job says so
    assert "Ray stops it as soon as it starts" in (job.error or "")


def test_log_lines_arrive_while_the_job_runs(rws: Workspace, tmp_path: Path) -> None:
    job = rws.jobs.submit_command(
        "for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 0.5; done", compute="ray-worker")
    seen: dict[str, tuple[float, str]] = {}
    for line in rws.jobs.stream(job.id, poll_s=0.05):
        if line.startswith("line-"):
            seen[line] = (time.monotonic(), rws.jobs.get(job.id).status)
    ended = time.monotonic()
    job = rws.jobs.get(job.id)
    assert job.status == "Completed", _logs(rws, job.id)
    assert list(seen) == [f"line-{i}" for i in range(1, 9)]
    first_at, status_then = seen["line-1"]
    assert status_then == "Running"  # read from the job's log while the Ray job was running
    assert seen["line-8"][0] - first_at > 2.0  # lines came one by one, not all at the end
    assert ended - first_at > 2.0


def test_command_job_with_inputs_outputs_and_pip_runtime_env(rws: Workspace,
                                                             ray_cluster: RayCluster,
                                                             tmp_path: Path) -> None:
    code = tmp_path / "camel"
    code.mkdir()
    (code / "camel.py").write_text(
        "import os, sys\nimport inflection\nfrom jupyter_mlws import run\n"
        "words = [w.strip() for w in open(sys.argv[1]) if w.strip()]\n"
        "with open(os.path.join(sys.argv[2], 'camel.txt'), 'w') as f:\n"
        "    f.write('\\n'.join(inflection.camelize(w) for w in words))\n"
        "run.log_metric('words', len(words))\n"
        "print('inflection from', inflection.__file__)\n"
        "print('greeting', os.environ['GREETING'])\n")
    words = tmp_path / "words.txt"
    words.write_text("hello_world\nray_cluster\n")
    # inflection is not installed on the nodes: Ray's runtime_env pip brings it (on the worker,
    # through the proxy of scripts/ray-cluster.sh, its network namespace has no route out)
    rws.environments.create("ray-pip", pip_requirements=["inflection==0.5.1"],
                            environment_variables={"GREETING": "hi from the environment"})
    job = rws.jobs.submit_command(
        "python camel.py ${{inputs.words}} ${{outputs.result}}", code=str(code),
        environment="ray-pip", compute="ray-worker",
        inputs={"words": {"type": "uri_file", "path": str(words)}},
        outputs={"result": {"type": "uri_folder"}})
    job = rws.jobs.wait(job.id, timeout=200)
    assert job.status == "Completed", _logs(rws, job.id)

    out = rws.jobs.paths(job.id).outputs / "result" / "camel.txt"
    assert out.read_text() == "HelloWorld\nRayCluster"  # written on the worker, seen here
    outputs = [io for io in rws.jobs.io(job.id) if io.direction == "output"]
    assert [(o.name, o.uri) for o in outputs] == [("result", f"mlws://jobs/{job.id}/outputs/result")]
    assert [(m.key, m.value) for m in rws.jobs.metrics(job.id)] == [("words", 2.0)]
    log = rws.jobs.logs(job.id)
    assert "runtime_resources/pip/" in log.split("inflection from", 1)[1].splitlines()[0]
    assert "greeting hi from the environment" in log
    info = ray_cluster.job(job.id)
    assert info["runtime_env"]["pip"] == ["inflection==0.5.1"]
    assert info["driver_agent_http_address"].startswith(f"http://{WORKER_IP}:")


def test_notebook_in_a_pip_environment_runs_in_rays_virtualenv(rws: Workspace,
                                                               tmp_path: Path) -> None:
    rws.environments.create("ray-pip", pip_requirements=["inflection==0.5.1"],
                            environment_variables={"GREETING": "hi from the environment"})
    nb = make_notebook(tmp_path / "code" / "pip.ipynb",
                       "import os, sys, inflection\nfrom jupyter_mlws import run\n"
                       "run.log_param('camel', inflection.camelize('ray_notebook'))\n"
                       "run.log_param('python', sys.executable)\n"
                       "run.log_param('greeting', os.environ['GREETING'])")
    job = rws.jobs.wait(rws.jobs.submit_notebook(nb, environment="ray-pip",
                                                 compute="ray-worker").id, timeout=200)
    assert job.status == "Completed", _logs(rws, job.id)
    params = rws.jobs.params(job.id)
    assert params["camel"] == "RayNotebook"
    assert "runtime_resources/pip/" in params["python"]  # the kernel runs in that virtualenv
    assert params["greeting"] == "hi from the environment"


def test_two_jobs_run_at_once_on_two_nodes(rws: Workspace, tmp_path: Path) -> None:
    code = tmp_path / "span"
    code.mkdir()
    meet = tmp_path / "meet"  # a rendezvous both jobs reach (the test cluster shares tmp_path)
    meet.mkdir()
    (code / "span.py").write_text(
        NODE_IP + "import json, os, sys, time, uuid\n"
        f"meet = {str(meet)!r}\n"
        "open(os.path.join(meet, uuid.uuid4().hex), 'w').close()\n"
        "deadline = time.time() + 150\n"
        "while len(os.listdir(meet)) < 2 and time.time() < deadline:\n"
        "    time.sleep(0.1)\n"
        "json.dump({'node': node_ip, 'met': len(os.listdir(meet))},"
        " open(sys.argv[1] + '/span.json', 'w'))\n")
    jobs = [rws.jobs.submit_command("python span.py ${{outputs.span}}", code=str(code),
                                    compute="ray", outputs={"span": {}}) for _ in range(2)]
    spans = []
    for job in jobs:
        done = rws.jobs.wait(job.id, timeout=180)
        assert done.status == "Completed", _logs(rws, job.id)
        spans.append(json.loads((rws.jobs.paths(job.id).outputs / "span" / "span.json")
                                .read_text()))
    assert {s["node"] for s in spans} == {HEAD_IP, WORKER_IP}
    # each job waited for the other to start: both saw two markers, so they ran at once
    assert [s["met"] for s in spans] == [2, 2]


def test_an_unreachable_head_fails_submission_naming_the_address(ws: Workspace,
                                                                 tmp_path: Path) -> None:
    ws.computes.create("gone", type="ray", address="http://127.0.0.1:9",
                       settings={"shared_paths": [str(tmp_path)]})
    t0 = time.monotonic()
    with pytest.raises(MlwsError, match=r"http://127\.0\.0\.1:9 cannot be reached"):
        ws.jobs.submit_command("echo hi", compute="gone")
    assert time.monotonic() - t0 < 5
    assert ws.jobs.list() == []


@pytest.mark.parametrize("definition, says", [
    ({"docker_steps": ["RUN apt-get update && apt-get install -y curl"],
      "pip_requirements": ["six"]}, "has Docker steps"),
    ({"image": "python:3.11-slim"}, "is the ready Docker image python:3.11-slim"),
], ids=["docker-steps", "image"])
def test_environments_ray_cannot_run_are_refused_at_submission(
        rws: Workspace, definition: dict[str, object], says: str) -> None:
    rws.environments.create("not-for-ray", **definition)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedEnvironmentError, match=says) as err:
        rws.jobs.submit_command("echo hi", environment="not-for-ray", compute="ray")
    assert "container runtimes are not supported yet" in str(err.value)
    assert rws.jobs.list() == []


def test_storage_the_nodes_cannot_reach_is_refused_at_submission(ws: Workspace,
                                                                 ray_cluster: RayCluster) -> None:
    ws.computes.create("elsewhere", type="ray", address=ray_cluster.address,
                       settings={"shared_paths": ["/srv/not-this-workspace"]})
    with pytest.raises(ValidationError, match="cannot reach this workspace's storage") as err:
        ws.jobs.submit_command("echo hi", compute="elsewhere")
    assert str(ws.artifacts.root) in str(err.value)
    ws.computes.create("unsaid", type="ray", address=ray_cluster.address)
    with pytest.raises(ValidationError, match="does not say which storage its nodes share"):
        ws.jobs.submit_command("echo hi", compute="unsaid")


def test_a_wrong_token_is_refused_without_showing_it(rws: Workspace, ray_cluster: RayCluster,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if not ray_cluster.token:
        _unavailable("the cluster runs without token auth (MLWS_RAY_AUTH=disabled)")
    monkeypatch.setenv(TOKEN_ENV, "not-the-token-0123456789")
    with pytest.raises(MlwsError, match="HTTP 403") as err:
        rws.jobs.submit_command("echo hi", compute="ray")
    assert "not-the-token" not in str(err.value)
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(ValidationError, match=f"environment variable {TOKEN_ENV}, which is not"):
        rws.jobs.submit_command("echo hi", compute="ray")


def test_compute_show_reports_nodes_resources_and_health(rws: Workspace,
                                                         ray_cluster: RayCluster) -> None:
    from jupyter_mlws.cli import main

    result = CliRunner().invoke(main, ["compute", "show", "ray-worker", "-w", str(rws.path)])
    assert result.exit_code == 0, result.output
    assert "2 of 2 node(s) alive" in result.output
    assert f"{HEAD_IP} head ALIVE: CPU=1, head=1" in result.output
    assert f"{WORKER_IP} worker ALIVE: CPU=1, worker=1" in result.output
    if ray_cluster.token:
        assert ray_cluster.token not in result.output
    as_json = CliRunner().invoke(main, ["compute", "show", "ray-worker", "-w", str(rws.path),
                                        "-o", "json"])
    assert json.loads(as_json.output)["cluster"].startswith("ok: Ray 2.60.0")

    rws.computes.create("gone", type="ray", address="http://127.0.0.1:9",
                        settings={"shared_paths": ["/"]})
    result = CliRunner().invoke(main, ["compute", "show", "gone", "-w", str(rws.path)])
    assert result.exit_code == 0 and "unreachable" in result.output


#: An Azure ML conda file (the shape of Azure's "Manage environments" docs: name, channels,
#: a Python, conda packages pinned with ``=``, pip itself and a ``pip:`` list). numpy is pinned
#: to the nodes' own version (Ray's virtualenv sees their site-packages: nothing to download).
AZURE_CONDA = """\
name: model-env
channels:
  - conda-forge
dependencies:
  - python=3.11
  - numpy={numpy}
  - pip=23.3.1
  - inflection=0.5.1
  - libgcc-ng
  - pip:
    - six>=1.16
"""


def test_an_azure_conda_file_runs_with_its_packages_translated_to_pip(
        rws: Workspace, ray_cluster: RayCluster, tmp_path: Path) -> None:
    import numpy

    conda = tmp_path / "conda.yaml"
    conda.write_text(AZURE_CONDA.format(numpy=numpy.__version__))
    rws.environments.create("azure-conda", conda_file=conda)
    code = tmp_path / "conda-job"
    code.mkdir()
    (code / "use.py").write_text(
        "import inflection, numpy, six\n"
        "print('camel', inflection.camelize('conda_on_ray'), 'from', inflection.__file__)\n"
        "print('numpy', numpy.__version__)\n")
    job = rws.jobs.wait(rws.jobs.submit_command(
        "python use.py", code=str(code), environment="azure-conda",
        compute="ray-worker").id, timeout=240)
    log = rws.jobs.logs(job.id)
    assert job.status == "Completed", log[-4000:]
    assert "camel CondaOnRay from" in log
    assert "runtime_resources/pip/" in log.split("camel CondaOnRay from", 1)[1].splitlines()[0]
    assert f"numpy {numpy.__version__}" in log
    # the job's log says what was translated and dropped
    assert "conda -> PyPI: inflection=0.5.1 -> inflection==0.5.1" in log
    assert "conda: dropped libgcc-ng (a system library" in log
    assert "the conda file asks for python=3.11; the nodes' Python is used" in log
    assert "conda: channels conda-forge not used" in log
    info = ray_cluster.job(job.id)
    assert info["runtime_env"]["pip"] == [f"numpy=={numpy.__version__}", "inflection==0.5.1",
                                          "six>=1.16"]


def test_conda_packages_with_no_pypi_equivalent_are_named_at_submission(
        rws: Workspace) -> None:
    rws.environments.create("conda-only", conda_file={
        "channels": ["conda-forge"],
        "dependencies": ["python=3.11", "pip", "r-base=4.3", "conda-build", "six=1.16.0"]})
    with pytest.raises(CondaTranslationError) as err:
        rws.jobs.submit_command("echo hi", environment="conda-only", compute="ray")
    assert err.value.details["packages"] == ["r-base=4.3 (exists only on conda)",
                                             "conda-build (exists only on conda)"]
    assert "pip:" in str(err.value)  # the hint: move them to the pip: list
    assert rws.jobs.list() == []

    # a name the package index does not have: the runner asks the index, as a venv build does
    rws.environments.create("conda-unknown", conda_file={
        "channels": ["conda-forge"],
        "dependencies": ["python=3.11", "pip", "mlws-conda-only-package-that-pypi-lacks=1.0"]})
    job = rws.jobs.wait(rws.jobs.submit_command(
        "echo hi", environment="conda-unknown", compute="ray").id, timeout=120)
    assert job.status == "Failed"
    assert ("mlws-conda-only-package-that-pypi-lacks=1.0 (the package index has no "
            "'mlws-conda-only-package-that-pypi-lacks')") in (job.error or "")
