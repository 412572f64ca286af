"""A job running on machine A, seen and canceled from machine B (two workspace folders on one
team workspace: PostgreSQL + SeaweedFS)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.jobs import hosts
from jupyter_mlws.jobs.process_identity import kill_recorded_group
from tests.helpers import stop_jobs
from tests.team.conftest import Team


def _wait_status(ws: Workspace, job_id: str, wanted: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    status = ws.jobs.get(job_id).status
    while status not in wanted and time.monotonic() < deadline:
        time.sleep(0.1)
        status = ws.jobs.get(job_id).status
    return status


def test_b_sees_a_running_job_does_not_reap_it_and_cancels_it_through_the_store(
    team: Team, tmp_path: Path
) -> None:
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    try:
        job = a.jobs.submit_command("python -c \"import time; print('up', flush=True); "
                                    "time.sleep(300)\"")
        assert _wait_status(a, job.id, {"Running"}) == "Running", a.jobs.logs(job.id)
        assert hosts.describe(job.spec) == f"{socket.gethostname()}:{a.path}"

        b.close()
        b = Workspace.open(tmp_path / "B")  # opening runs B's orphan reaper
        assert b.jobs.reap_orphans() == []
        seen = {j.id: j.status for j in b.jobs.list()}
        assert seen[job.id] == "Running"

        canceled = b.jobs.cancel(job.id)  # a request in the store; A's runner acts on it
        assert canceled.cancel_requested
        assert _wait_status(b, job.id, {"Canceled", "Failed", "Completed"}) == "Canceled"
        assert not (b.path / "artifacts" / "jobs" / job.id).exists()
    finally:
        stop_jobs(a)
        a.close()
        b.close()


def test_b_reads_the_logs_and_registers_the_output_of_a_job_a_ran(
    team: Team, tmp_path: Path
) -> None:
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    try:
        job = a.jobs.submit_command(
            "python -c \"import pathlib, sys; print('trained on A', flush=True); "
            "pathlib.Path(sys.argv[1], 'weights.txt').write_text('w=42')\" "
            "${{outputs.model}}", outputs={"model": {"type": "uri_folder"}})
        assert _wait_status(b, job.id, {"Completed", "Failed", "Canceled"}) == "Completed"
        deadline = time.monotonic() + 60  # the runner publishes the files as it ends
        while "files_tree" not in b.store.get_job(job.id).spec and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "trained on A" in b.jobs.logs(job.id)
        model = b.models.create("from-a", f"mlws://jobs/{job.id}/outputs/model")
        got = b.models.download("from-a", model.version, tmp_path / "got")
        assert (got / "weights.txt").read_text() == "w=42"
        assert (a.jobs.paths(job.id).outputs / "model" / "weights.txt").read_text() == "w=42"
    finally:
        stop_jobs(a)
        a.close()
        b.close()


def test_b_reaps_a_job_only_once_its_machine_stopped_beating(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLWS_HOST_HEARTBEAT_S", "0.5")  # A's runner inherits it
    monkeypatch.setenv("MLWS_HOST_HEARTBEAT_EXPIRY_S", "6")
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    job = a.jobs.submit_command("python -c \"import time; time.sleep(300)\"")
    paths = a.jobs.paths(job.id)
    try:
        assert _wait_status(a, job.id, {"Running"}) == "Running", a.jobs.logs(job.id)
        key = hosts.heartbeat_key(hosts.this_host(a.path))
        deadline = time.monotonic() + 60
        while b.store.get_meta(key) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b.jobs.reap_orphans() == []  # A beats: its job is left alone

        runner = a.jobs.get(job.id).runner_pid
        assert runner is not None
        os.kill(runner, signal.SIGKILL)  # machine A "dies": its runner stops beating
        kill_recorded_group(paths.child_pid)
        reaped: list[str] = []
        deadline = time.monotonic() + 90
        while job.id not in reaped and time.monotonic() < deadline:
            reaped = b.jobs.reap_orphans()
            time.sleep(0.2)
        assert reaped == [job.id]
        failed = b.jobs.get(job.id)
        assert failed.status == "Failed" and "stopped answering" in (failed.error or "")
    finally:
        kill_recorded_group(paths.child_pid)
        stop_jobs(a)
        a.close()
        b.close()
