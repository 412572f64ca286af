"""Ray jobs without a shared filesystem: a real two-node Ray cluster and a real team workspace
(PostgreSQL + SeaweedFS). The compute has no ``shared_paths``: the job's files go through the S3
artifact store and the worker node runs them in a temp folder of its own."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import ValidationError
from tests.helpers import make_notebook, stop_jobs
from tests.team.conftest import Servers, Team, team, team_servers  # noqa: F401 - fixtures

from .conftest import HEAD_IP, TOKEN_ENV, WORKER_IP, RayCluster

pytestmark = pytest.mark.timeout(420)

#: What the job writes about where it ran (its cwd, its host and the address it reaches the
#: head from), into its output, for the test to check.
WHERE = (
    "import json, os, socket\n"
    "_s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"_s.connect(({HEAD_IP!r}, 9))\n"
    "where = {'cwd': os.getcwd(), 'host': socket.gethostname(), 'ip': _s.getsockname()[0],\n"
    "         'aws_in_env': sorted(k for k in os.environ if k.startswith('AWS_'))}\n"
)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def s3_for_nodes(team: Team, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:  # noqa: F811
    """The S3 server listens on 127.0.0.1, which the worker's network namespace cannot reach: a
    TCP relay on the head's address (every node reaches it) stands for a team's S3 endpoint."""
    upstream = team.servers.env["AWS_ENDPOINT_URL"].rsplit("//", 1)[1]
    up_host, up_port = upstream.rsplit(":", 1)
    server = socket.create_server((HEAD_IP, 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            out = socket.create_connection((up_host, int(up_port)), timeout=30)
            out.settimeout(None)
            threading.Thread(target=_pipe, args=(conn, out), daemon=True).start()
            threading.Thread(target=_pipe, args=(out, conn), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{HEAD_IP}:{port}")
    yield team
    stop.set()
    server.close()
    thread.join(timeout=5)


def _machines(team: Team, tmp_path: Path, cluster: RayCluster,  # noqa: F811
              monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Workspace]:
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    settings: dict[str, object] = {"resources": {"worker": 1}}  # no shared_paths
    if cluster.token:
        monkeypatch.setenv(TOKEN_ENV, cluster.token)
        settings["token_env"] = TOKEN_ENV
    a.computes.create("ray-nofs", type="ray", address=cluster.address, settings=settings)
    return a, b


def _check_where(where: dict[str, object], ws: Workspace, tmp_path: Path) -> None:
    """The job ran on the worker node, in a temp folder that is not the workspace's."""
    cwd = Path(str(where["cwd"]))
    assert where["ip"] == WORKER_IP
    assert "mlws-ray-job-" in str(cwd), cwd
    for folder in (ws.path, tmp_path):
        assert folder.resolve() not in cwd.resolve().parents, (cwd, folder)
    assert not cwd.exists()  # the worker removed its temp folder
    assert where["aws_in_env"] == []  # the store's credentials were the worker's, not the job's


def _published(ws: Workspace, job_id: str) -> None:
    """Wait until the runner has published the job's files for the team's other machines."""
    deadline = time.monotonic() + 60
    while "files_tree" not in ws.store.get_job(job_id).spec and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "files_tree" in ws.store.get_job(job_id).spec


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_command_job_with_data_input_and_model_output_through_s3(
    ray_cluster: RayCluster, s3_for_nodes: Team, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = _machines(s3_for_nodes, tmp_path, ray_cluster, monkeypatch)
    try:
        rows = tmp_path / "rows.csv"
        rows.write_text("x\n" + "\n".join(str(i) for i in range(1000)) + "\n")
        a.data.create("rows", rows, type="uri_file")
        code = tmp_path / "code"
        code.mkdir()
        (code / "train.py").write_text(
            WHERE + "import sys\nfrom pathlib import Path\nfrom jupyter_mlws import run\n"
            "total = sum(int(x) for x in Path(sys.argv[1]).read_text().split()[1:])\n"
            "out = Path(sys.argv[2])\n"
            "(out / 'weights.bin').write_bytes(total.to_bytes(8, 'little') * 4096)\n"
            "(out / 'where.json').write_text(json.dumps(where))\n"
            "run.log_metric('total', total)\nprint('trained on', where['ip'], flush=True)\n")
        job = a.jobs.submit_command(
            "python train.py ${{inputs.rows}} ${{outputs.model}}", code=code,
            inputs={"rows": {"type": "uri_file", "path": "azureml:rows:1"}},
            outputs={"model": {"type": "uri_folder"}}, compute="ray-nofs")
        job = a.jobs.wait(job.id, timeout=300)
        logs = a.jobs.logs(job.id)
        assert job.status == "Completed", (job.error, logs[-4000:])
        assert f"trained on {WORKER_IP}" in logs
        assert "no shared storage: the job's files go through the artifact store" in logs
        assert [(m.key, m.value) for m in a.jobs.metrics(job.id)] == [("total", 499500.0)]
        out = a.jobs.paths(job.id).outputs / "model"
        _check_where(json.loads((out / "where.json").read_text()), a, tmp_path)

        # registered from the other machine, downloaded there byte-identical
        _published(a, job.id)
        expected = (499500).to_bytes(8, "little") * 4096
        model = b.models.create("ray-model", f"mlws://jobs/{job.id}/outputs/model")
        got = b.models.download("ray-model", model.version, tmp_path / "got")
        assert (got / "weights.bin").read_bytes() == expected
        assert _digest(got) == _digest(out)

        # the S3 keys went only into the runtime env: not the entrypoint, not any log
        secret = s3_for_nodes.servers.env["AWS_SECRET_ACCESS_KEY"]
        info = ray_cluster.job(job.id)
        assert "jupyter_mlws.compute.ray.worker" in info["entrypoint"]
        assert secret not in info["entrypoint"]
        assert secret not in logs
        for path in a.path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    finally:
        stop_jobs(a, timeout=60)
        a.close()
        b.close()


def test_notebook_job_with_data_input_through_s3(
    ray_cluster: RayCluster, s3_for_nodes: Team, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = _machines(s3_for_nodes, tmp_path, ray_cluster, monkeypatch)
    try:
        table = tmp_path / "table"
        table.mkdir()
        (table / "part-0.txt").write_text("3\n4\n")
        (table / "part-1.txt").write_text("5\n")
        a.data.create("table", table, type="uri_folder")
        nb = make_notebook(
            tmp_path / "nb" / "score.ipynb",
            WHERE + "from pathlib import Path\nfrom jupyter_mlws import run\n"
            "values = [int(x) for p in sorted(Path(table).glob('*.txt'))\n"
            "          for x in p.read_text().split()]\n"
            "run.log_metric('scaled', sum(values) * scale)\n"
            "out = run.output_path('report')\n"
            "(out / 'where.json').write_text(json.dumps(where))\n"
            "(out / 'sum.txt').write_text(str(sum(values)))\n"
            "print('notebook on', where['ip'])",
            parameters="table = ''\nscale = 1")
        job = a.jobs.submit_notebook(
            nb, {"scale": 10}, compute="ray-nofs",
            inputs={"table": {"type": "uri_folder", "path": "azureml:table:1"}},
            outputs={"report": {"type": "uri_folder"}})
        job = a.jobs.wait(job.id, timeout=300)
        assert job.status == "Completed", (job.error, a.jobs.logs(job.id)[-4000:])
        assert [(m.key, m.value) for m in a.jobs.metrics(job.id)] == [("scaled", 120.0)]
        paths = a.jobs.paths(job.id)
        assert f"notebook on {WORKER_IP}" in paths.notebook_out.read_text()
        report = paths.outputs / "report"
        assert (report / "sum.txt").read_text() == "12"
        _check_where(json.loads((report / "where.json").read_text()), a, tmp_path)

        # B sees the job's output notebook and registers its output
        _published(a, job.id)
        assert "notebook on" in b.jobs.paths(job.id).notebook_out.read_text()
        model = b.models.create("report", f"mlws://jobs/{job.id}/outputs/report")
        got = b.models.download("report", model.version, tmp_path / "got")
        assert _digest(got) == _digest(report)
    finally:
        stop_jobs(a, timeout=60)
        a.close()
        b.close()


def test_without_shared_paths_or_artifact_store_the_error_names_both_fixes(
    tmp_path: Path,
) -> None:
    ws = Workspace.init(tmp_path / "solo")
    try:
        ws.computes.create("ray", type="ray", address="http://127.0.0.1:9")
        with pytest.raises(ValidationError) as err:
            ws.jobs.submit_command("echo hi", compute="ray")
        text = str(err.value)  # the message and its hint
        assert "artifact_uri" in text and "shared_paths" in text
    finally:
        ws.close()
