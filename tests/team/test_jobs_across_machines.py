"""A job running on machine A, seen and canceled from machine B (two workspace folders on one
team workspace: PostgreSQL + SeaweedFS)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from jupyter_mlws import Workspace
from jupyter_mlws.jobs import hosts
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
