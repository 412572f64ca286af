"""What is left when a job's runner dies: the reaper stops the job's process group, and never a
process that only reuses a recorded PID (its start time and token must match too).

The Docker side (the container of a dead runner) is in test_docker_jobs.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.jobs.runner import is_locked
from tests.jobs.test_notebook_jobs import wait_for

LOOP = "trap '' TERM; echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"


def _kill_runner(ws: Workspace, job_id: str) -> None:
    """SIGKILL the job's runner (as a crash or the OOM killer would) and wait until it is gone."""
    wait_for(lambda: ws.jobs.get(job_id).runner_pid is not None, timeout=120)
    pid = ws.jobs.get(job_id).runner_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not is_locked(ws.jobs.paths(job_id).runner_lock), timeout=30)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


@pytest.fixture
def unrelated() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of someone else, leading its own process group."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def _leftover_job(ws: Workspace) -> tuple[str, dict[str, object]]:
    """A local job whose process outlives its killed runner (it ignores SIGTERM)."""
    job = ws.jobs.submit_command(LOOP)
    wait_for(lambda: "tick 2" in ws.jobs.logs(job.id), timeout=120)
    ident = json.loads(ws.jobs.paths(job.id).child_pid.read_text())
    if isinstance(ident, int):  # the bare PID of an older version
        ident = {"pid": ident}
    _kill_runner(ws, job.id)
    assert _alive(ident["pid"])
    return job.id, ident


@pytest.mark.parametrize("recorded", ["bare pid", "other start time"])
def test_the_reaper_does_not_kill_a_process_that_reuses_the_pid(
        jws: Workspace, unrelated: subprocess.Popen[bytes], recorded: str) -> None:
    job_id, ident = _leftover_job(jws)
    try:
        pid_file = jws.jobs.paths(job_id).child_pid
        if recorded == "bare pid":  # what an older version wrote
            pid_file.write_text(str(unrelated.pid))
        else:  # the job's identity, but its PID is now someone else's
            pid_file.write_text(json.dumps({**ident, "pid": unrelated.pid}))
        assert jws.jobs.reap_orphans() == [job_id]
        assert unrelated.poll() is None and _alive(unrelated.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(ident["pid"]), signal.SIGKILL)  # type: ignore[call-overload]


def test_the_reaper_kills_the_jobs_own_leftover_process(jws: Workspace) -> None:
    job_id, ident = _leftover_job(jws)
    pid = int(ident["pid"])  # type: ignore[call-overload]
    try:
        assert jws.jobs.reap_orphans() == [job_id]
        wait_for(lambda: not _alive(pid), timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def test_a_process_identity_is_checked_by_start_time_and_token(
        tmp_path: Path, unrelated: subprocess.Popen[bytes]) -> None:
    from jupyter_mlws.jobs.process_identity import ProcessIdentity, kill_recorded_group

    pid_file = tmp_path / "child.pid"
    ProcessIdentity.of(unrelated.pid, "not-its-token").write(pid_file)
    assert kill_recorded_group(pid_file) == []  # right PID and start time, no token
    ProcessIdentity(unrelated.pid, 1, "x").write(pid_file)
    assert kill_recorded_group(pid_file) == []
    assert unrelated.poll() is None
    env = {**os.environ, "MLWS_JOB_TOKEN": "tok"}
    mine = subprocess.Popen(["sleep", "60"], start_new_session=True, env=env)
    ProcessIdentity.of(mine.pid, "tok").write(pid_file)
    assert kill_recorded_group(pid_file) == [mine.pid]
    assert mine.wait(timeout=10) == -signal.SIGKILL
