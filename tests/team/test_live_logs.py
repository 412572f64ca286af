"""Following, from machine B, the log of a job running on machine A (two workspace folders on one
team workspace: PostgreSQL + SeaweedFS). The job waits on a file the test makes only once B has
seen its first line, so B must have read it live."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from jupyter_mlws import Workspace
from jupyter_mlws.jobs import log_parts
from tests.helpers import stop_jobs
from tests.team.conftest import Team

ROOT = Path(__file__).resolve().parents[2]
# prints, waits (up to 3 minutes) for the file the test makes, prints again
JOB = ("python -c \"import os, sys, time; print('first line', flush=True); "
       "deadline = time.time() + 180\n"
       "while not os.path.exists(sys.argv[1]) and time.time() < deadline: time.sleep(0.05)\n"
       "print('second line', flush=True)\" {go}")


def _pair(team: Team, tmp_path: Path) -> tuple[Workspace, Workspace]:
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    return a, b


def test_b_streams_a_running_jobs_log_live_and_ends_with_the_job(
    team: Team, tmp_path: Path
) -> None:
    a, b = _pair(team, tmp_path)
    go = tmp_path / "go"
    try:
        job = a.jobs.submit_command(JOB.format(go=go))
        seen: list[str] = []
        for line in b.jobs.stream(job.id, poll_s=0.05):
            seen.append(line)
            if line == "first line":
                assert not go.exists()
                assert b.jobs.get(job.id).status == "Running"  # read while A still runs it
                go.touch()
        assert "first line" in seen and "second line" in seen, seen
        assert seen.index("first line") < seen.index("second line")
        assert b.jobs.get(job.id).status == "Completed"
        # what B followed is what A's own log holds
        assert "\n".join(seen) + "\n" == a.jobs.logs(job.id)
        names = [k.rsplit("/", 1)[1] for k in team.object_keys()
                 if f"/{log_parts.folder(job.id)}/" in k]
        assert log_parts.END in names and len(names) >= 3  # two parts at least, then end
    finally:
        stop_jobs(a)
        a.close()
        b.close()


def test_mlws_job_stream_on_b_prints_a_running_jobs_lines_then_its_final_state(
    team: Team, tmp_path: Path
) -> None:
    a, b = _pair(team, tmp_path)
    b.close()
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLWS_WORKSPACE": str(tmp_path / "B")}
    try:
        job = a.jobs.submit_command(JOB.format(go=go))
        proc = subprocess.Popen([sys.executable, "-m", "jupyter_mlws.cli", "job", "stream", job.id],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == "first line":
                go.touch()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert lines.index("first line") < lines.index("second line")
        assert f"Job {job.id}: Completed" in err
    finally:
        stop_jobs(a)
        a.close()


def test_b_pages_a_log_by_offset_and_reads_a_tail(team: Team, tmp_path: Path) -> None:
    """What the REST log endpoint and the sidebar call: ``read_log`` from an offset, in small
    pages, and ``read_log_tail``; a character is never cut in two."""
    a, b = _pair(team, tmp_path)
    try:
        job = a.jobs.submit_command(
            "python -c \"[print(f'ligne {i} é', flush=True) for i in range(200)]\"")
        text, offset = "", 0
        while True:
            chunk = b.jobs.read_log(job.id, offset, max_bytes=7)
            text += chunk["text"]
            offset = chunk["offset"]
            if chunk["done"]:
                break
            if not chunk["text"]:
                time.sleep(0.05)
        assert [f"ligne {i} é" for i in range(200)] == text.splitlines()
        assert b.jobs.get(job.id).status == "Completed"
        tail = b.jobs.read_log_tail(job.id, 2)
        assert tail["text"] == "ligne 198 é\nligne 199 é"
        assert tail["offset"] == offset and tail["done"]
        assert b.jobs.logs(job.id, tail=1) == "ligne 199 é"
    finally:
        stop_jobs(a)
        a.close()
        b.close()
