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
from jupyter_mlws.compute.ray import via_store
from jupyter_mlws.compute.ray.client import RayJobsClient
from jupyter_mlws.errors import ValidationError
from tests.helpers import make_notebook, stop_jobs
from tests.team.conftest import Servers, Team, team, team_servers  # noqa: F401 - fixtures

from .conftest import HEAD_IP, STATE, TOKEN_ENV, WORKER_IP, RayCluster

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

        # the S3 keys are nowhere in the job's Ray record or its log
        secret = s3_for_nodes.servers.env["AWS_SECRET_ACCESS_KEY"]
        info = ray_cluster.job(job.id)
        assert "jupyter_mlws.compute.ray.worker" in info["entrypoint"]
        _assert_absent([secret], [json.dumps(info), logs],
                       [path for path in a.path.rglob("*") if path.is_file()])
    finally:
        stop_jobs(a, timeout=60)
        a.close()
        b.close()


def _assert_absent(keys: list[str], texts: list[str], files: list[Path]) -> None:
    """None of ``keys`` is in any of ``texts`` nor in the bytes of any of ``files``."""
    for key in keys:
        for text in texts:
            assert key not in text
        for path in files:
            assert key.encode() not in path.read_bytes(), path


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


#: What the job finds of its keys package: the folder Ray put on its path for it, what is
#: left in it, any keys file under Ray's py_modules folder, and the runtime env its own Ray
#: tasks would get.
LOOK_FOR_KEYS = (
    "import sys\n"
    f"_keys = [p for p in sys.path if {via_store.KEYS_PREFIX!r} in p]\n"
    "_cfg = json.loads(os.environ.get('RAY_JOB_CONFIG_JSON_ENV_VAR') or '{}')\n"
    "where['keys_dirs'] = _keys\n"
    "where['keys_left'] = [sorted(os.listdir(p)) for p in _keys if os.path.isdir(p)]\n"
    "where['keys_files'] = [os.path.join(r, f) for p in _keys\n"
    "                       for r, _, fs in os.walk(os.path.dirname(p)) for f in fs\n"
    f"                       if f == {via_store.KEYS_FILE!r}]\n"
    "where['job_modules'] = (_cfg.get('runtime_env') or {}).get('py_modules')\n"
)


def _ray_log_files() -> list[Path]:
    """The log files of both nodes' Ray sessions (the dashboard serves them)."""
    return [p for p in STATE.glob("*/session_*/logs/**/*") if p.is_file()]


def test_store_keys_are_not_in_the_dashboard_nor_seen_by_the_job(
    ray_cluster: RayCluster, s3_for_nodes: Team, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = _machines(s3_for_nodes, tmp_path, ray_cluster, monkeypatch)
    try:
        code = tmp_path / "code"
        code.mkdir()
        (code / "look.py").write_text(
            WHERE + LOOK_FOR_KEYS + "from pathlib import Path\n"
            "(Path(sys.argv[1]) / 'where.json').write_text(json.dumps(where))\n"
            "print('looked on', where['ip'], flush=True)\n")
        job = a.jobs.submit_command("python look.py ${{outputs.found}}", code=code,
                                    outputs={"found": {"type": "uri_folder"}},
                                    compute="ray-nofs")
        job = a.jobs.wait(job.id, timeout=300)
        logs = a.jobs.logs(job.id)
        assert job.status == "Completed", (job.error, logs[-4000:])
        where = json.loads((a.jobs.paths(job.id).outputs / "found" / "where.json").read_text())
        _check_where(where, a, tmp_path)  # ran on the worker; no AWS_* variable in its env

        # the keys came in the job's keys package, which was on the job's path, emptied
        info = ray_cluster.job(job.id)
        packages = [m.removeprefix("gcs://") for m in info["runtime_env"]["py_modules"]
                    if via_store.KEYS_PREFIX in m]
        assert len(packages) == 1 and len(where["keys_dirs"]) == 1
        assert where["keys_dirs"][0].endswith("/" + packages[0].removesuffix(".zip"))
        assert where["keys_left"] == [[]]  # the worker deleted the file before the job started
        assert where["keys_files"] == []
        assert not any(via_store.KEYS_PREFIX in str(m) for m in where["job_modules"] or [])
        assert not any(k.startswith("AWS_") for k in info["runtime_env"].get("env_vars", {}))
        # the cluster no longer has the package either; one that exists is not served
        client = RayJobsClient(ray_cluster.address, token=ray_cluster.token)
        assert not client.package_exists(packages[0])
        jupyter_pkg = next(m.removeprefix("gcs://") for m in info["runtime_env"]["py_modules"]
                           if via_store.KEYS_PREFIX not in m)
        assert client._request("GET", f"/api/packages/gcs/{jupyter_pkg}") is None  # empty body

        # neither key is in anything the dashboard shows, nor in the nodes' Ray logs
        shown = [json.dumps(ray_cluster.api("/api/jobs/")), json.dumps(info),
                 json.dumps(ray_cluster.api(f"/api/jobs/{job.id}/logs")), logs]
        env = s3_for_nodes.servers.env
        _assert_absent([env["AWS_SECRET_ACCESS_KEY"], env["AWS_ACCESS_KEY_ID"]], shown,
                       list(_ray_log_files()))
    finally:
        stop_jobs(a, timeout=60)
        a.close()
        b.close()


def test_a_result_line_the_job_prints_is_not_taken(
    ray_cluster: RayCluster, s3_for_nodes: Team, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = _machines(s3_for_nodes, tmp_path, ray_cluster, monkeypatch)
    try:
        code = tmp_path / "code"
        code.mkdir()
        (code / "evil.py").write_text(
            "import sys\nfrom pathlib import Path\n"
            "(Path(sys.argv[1]) / 'planted.txt').write_text('planted')\n")
        first = a.jobs.wait(a.jobs.submit_command(
            "python evil.py ${{outputs.model}}", code=code, outputs={"model": {}},
            compute="ray-nofs").id, timeout=300)
        assert first.status == "Completed", (first.error, a.jobs.logs(first.id)[-4000:])
        planted = a.store.get_job(first.id).spec[via_store.RESULT_KEY]  # a real tree

        # the second job prints result lines naming the first job's tree, then writes its own
        (code / "forge.py").write_text(
            "import sys\nfrom pathlib import Path\n"
            f"line = {via_store.RESULT_LINE!r} + ' ' + sys.argv[2]\n"
            "print(line + ' ' + '0' * 64, flush=True)\n"
            "print(line + ' ' + sys.argv[2], flush=True)\n"
            "(Path(sys.argv[1]) / 'real.txt').write_text('real')\n"
            "print(line + ' ' + 'f' * 64, end='', flush=True)\n")
        job = a.jobs.wait(a.jobs.submit_command(
            f"python forge.py ${{{{outputs.model}}}} {planted}", code=code,
            outputs={"model": {}}, compute="ray-nofs").id, timeout=300)
        logs = a.jobs.logs(job.id)
        assert job.status == "Completed", (job.error, logs[-4000:])
        assert f"{via_store.RESULT_LINE} {planted} {'0' * 64}" in logs  # the forgery was printed
        model = a.jobs.paths(job.id).outputs / "model"
        assert (model / "real.txt").read_text() == "real"
        assert not (model / "planted.txt").exists()
        got = a.store.get_job(job.id).spec[via_store.RESULT_KEY]
        assert got != planted
        assert f"(tree {got[:12]})" in logs  # the tree the worker stored, laid out

        # a job that prints a result line and kills the worker: its line is the only one
        (code / "kill.py").write_text(
            "import os, signal, sys\n"
            f"print({via_store.RESULT_LINE!r} + ' ' + sys.argv[1], flush=True)\n"
            "pid = os.getppid()  # up to the worker (a shell may run the command)\n"
            "while b'jupyter_mlws.compute.ray.worker' not in open(f'/proc/{pid}/cmdline', 'rb')"
            ".read():\n"
            "    pid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
            "os.kill(pid, signal.SIGKILL)\n")
        job = a.jobs.wait(a.jobs.submit_command(
            f"python kill.py {planted}", code=code, outputs={"model": {}},
            compute="ray-nofs").id, timeout=300)
        logs = a.jobs.logs(job.id)
        assert job.status == "Failed", logs[-4000:]
        assert f"{via_store.RESULT_LINE} {planted}" in logs
        assert "no result line authenticated with the job's key" in logs
        assert not (a.jobs.paths(job.id).outputs / "model" / "planted.txt").exists()
        assert via_store.RESULT_KEY not in a.store.get_job(job.id).spec
    finally:
        stop_jobs(a, timeout=60)
        a.close()
        b.close()
