"""The job agent's warm kernels (issue 15): real agent, real workers, real kernels, real papermill.

The agent only accelerates: every test also checks that the job itself ends as it would without
it. No timing assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_mlws import Workspace
from jupyter_mlws.agent import agent_dir, client
from jupyter_mlws.jobs.process_identity import ProcessIdentity, start_time


def wait_for(pred: Callable[[], Any], timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)
    return value


def status(ws: Workspace) -> dict[str, Any] | None:
    return client.request(ws.path, {"op": "status"})[0]


def alive(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def configure(ws: Workspace, **settings: Any) -> None:
    path = ws.path / "workspace.yaml"
    data = yaml.safe_load(path.read_text())
    data["job_agent"] = {"pool_size": 1, "idle_timeout_s": 120, **settings}
    path.write_text(yaml.safe_dump(data))


@pytest.fixture
def aws(jws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace with the agent on; the agent and its workers are stopped afterwards."""
    monkeypatch.setenv("MLWS_JOB_AGENT", "1")
    configure(jws)
    yield jws
    found = status(jws)
    client.request(jws.path, {"op": "stop"})
    if found:
        for pid in [p for pids in found["workers"].values() for p in pids] + [found["pid"]]:
            with contextlib.suppress(AssertionError):
                wait_for(lambda pid=pid: not alive(pid), timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def warm_pids(ws: Workspace) -> list[int]:
    """Start the agent if needed and wait for a warm worker; its PID(s)."""
    client.start_agent(ws.path, python=sys.executable)
    found = wait_for(lambda: (s := status(ws)) and s["ready"] and s)
    return [p for pids in found["workers"].values() for p in pids]


def job_pid(ws: Workspace, job_id: str) -> int:
    ident = ProcessIdentity.read(ws.jobs.paths(job_id).child_pid)
    assert ident is not None
    return ident.pid


def test_a_warm_kernel_is_never_shared_between_jobs(aws: Workspace, notebook) -> None:
    setter = notebook("leak = 'from job 1'\nprint('set')", parameters="msg = None")
    reader = notebook("print('LEAK IS', 'present' if 'leak' in globals() else 'absent')\n"
                      "import os\nprint('CWD', os.getcwd())\nprint('JOB', os.environ["
                      "'MLWS_JOB_ID'])\n"
                      "print('HIST', get_ipython().history_manager.hist_file)",
                      parameters="msg = None")
    first_pool = warm_pids(aws)
    one = aws.jobs.submit_notebook(setter, {"msg": "a"})
    assert aws.jobs.wait(one.id, timeout=300).status == "Completed"
    assert job_pid(aws, one.id) in first_pool  # it ran on the warm worker
    second_pool = wait_for(lambda: [p for p in warm_pids(aws) if p not in first_pool])
    two = aws.jobs.submit_notebook(reader, {"msg": "b"})
    done = aws.jobs.wait(two.id, timeout=300)
    assert done.status == "Completed", aws.jobs.logs(two.id)
    assert job_pid(aws, two.id) in second_pool and job_pid(aws, two.id) not in first_pool
    out = aws.jobs.paths(two.id).notebook_out.read_text()
    assert "LEAK IS absent" in out
    assert f"JOB {two.id}" in out  # the kernel got the job's environment...
    cwd = Path(json.loads(aws.jobs.paths(two.id).launch.read_text())["cwd"])
    assert f"CWD {cwd}" in out  # ...and its folder
    assert "HIST :memory:" in out  # as a cold kernel: no IPython history database written
    assert not alive(job_pid(aws, one.id))  # a used worker (and kernel) is gone


def test_a_job_ends_correctly_when_the_agent_is_killed_mid_job(aws: Workspace, notebook,
                                                              tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    nb = notebook(f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n"
                  "    time.sleep(0.05)\nprint('passed the gate')", parameters="msg = None")
    pool = warm_pids(aws)
    agent = status(aws)
    assert agent is not None
    job = aws.jobs.submit_notebook(nb, {"msg": "x"})
    wait_for(lambda: aws.jobs.get(job.id).status == "Running")
    assert job_pid(aws, job.id) in pool
    os.kill(agent["pid"], signal.SIGKILL)
    wait_for(lambda: not alive(agent["pid"]))
    gate.touch()
    done = aws.jobs.wait(job.id, timeout=300)
    assert done.status == "Completed", aws.jobs.logs(job.id)
    assert "passed the gate" in aws.jobs.paths(job.id).notebook_out.read_text()
    # what the killed agent left is cleaned: its refilled idle worker exits by itself and the
    # reaper removes its socket
    for pid in [p for p in (status(aws) or {}).get("workers", {}).values()]:
        wait_for(lambda pid=pid: not alive(pid))
    assert (agent_dir(aws.path) / "agent.sock").exists()
    aws.jobs.reap_orphans()  # the orphan reaper (run when a workspace opens) cleans it
    assert not (agent_dir(aws.path) / "agent.sock").exists()
    assert status(aws) is None
    assert not client.reap_agent(aws.path)  # nothing left


def test_without_an_agent_jobs_run_as_before_and_start_one(aws: Workspace, notebook) -> None:
    nb = notebook("print('cold start')", parameters="msg = None")
    assert status(aws) is None
    job = aws.jobs.submit_notebook(nb, {"msg": "x"})
    assert aws.jobs.wait(job.id, timeout=300).status == "Completed"
    assert "cold start" in aws.jobs.paths(job.id).notebook_out.read_text()
    wait_for(lambda: status(aws))  # the runner started the agent for the next jobs


def test_an_impostor_at_the_agents_socket_is_not_trusted(aws: Workspace, notebook) -> None:
    folder = agent_dir(aws.path)
    folder.mkdir(mode=0o700, exist_ok=True)
    # a live process of ours that is not the recorded agent answers at the socket
    ProcessIdentity(1, start_time(1), "not-the-token").write(folder / "agent.json")
    impostor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dfd = os.open(folder, os.O_RDONLY)
    try:
        impostor.bind(f"/proc/self/fd/{dfd}/agent.sock")
        impostor.listen(4)
        assert client.connect(aws.path) is None
        nb = notebook("print('ran anyway')", parameters="msg = None")
        job = aws.jobs.submit_notebook(nb, {"msg": "x"})
        assert aws.jobs.wait(job.id, timeout=300).status == "Completed"
        assert "ran anyway" in aws.jobs.paths(job.id).notebook_out.read_text()
    finally:
        impostor.close()
        os.close(dfd)


def test_the_pool_stays_under_its_memory_ceiling(aws: Workspace, notebook) -> None:
    configure(aws, memory_mb=1)  # less than one warm kernel takes
    client.start_agent(aws.path, python=sys.executable)
    found = wait_for(lambda: (s := status(aws)) and s["per_worker"] and s)
    assert found["per_worker"] > 1024 * 1024
    after = wait_for(lambda: (s := status(aws)) and not any(s["workers"].values()) and s)
    assert after["ready"] == 0 and after["memory"] <= 1024 * 1024
    nb = notebook("print('no warm kernel needed')", parameters="msg = None")
    job = aws.jobs.submit_notebook(nb, {"msg": "x"})
    assert aws.jobs.wait(job.id, timeout=300).status == "Completed"
    assert status(aws)["served"] == 0  # type: ignore[index]


def test_an_idle_agent_exits_with_its_workers(aws: Workspace) -> None:
    configure(aws, idle_timeout_s=10)
    client.start_agent(aws.path, python=sys.executable)
    agent = wait_for(lambda: (s := status(aws)) and any(s["workers"].values()) and s)
    pids = [p for ps in agent["workers"].values() for p in ps]
    wait_for(lambda: not alive(agent["pid"]))
    for pid in pids:
        wait_for(lambda pid=pid: not alive(pid))
    assert not (agent_dir(aws.path) / "agent.sock").exists()
