"""``mlws job notebook`` through the job agent (the fast path) against the normal path.

Real CLI processes, a real agent, real runners and papermill. Every test checks that what a user
sees (output, ``-o json``, errors, exit codes) and what is stored are the same both ways, and
that the fast path was really taken (the agent counts what it submitted) or really refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.agent import agent_dir, client
from jupyter_mlws.agent.intake import marker
from tests.jobs.test_agent import alive, configure, status, wait_for

ROOT = Path(__file__).resolve().parents[2]
JOB_ID = re.compile(r"^[a-z]+_[a-z]+_[a-z2-9]{6}$")
VOLATILE = {"id", "created_at", "started_at", "ended_at", "duration_s", "runner_pid",
            "updated_at"}


def stop_agent(ws: Workspace) -> None:
    found = status(ws)
    client.request(ws.path, {"op": "stop"})
    if found:
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not alive(found["pid"]), timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.kill(found["pid"], signal.SIGKILL)


@pytest.fixture
def fws(jws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace with the agent on (no warm kernels: the submissions are what is tested)."""
    monkeypatch.setenv("MLWS_JOB_AGENT", "1")
    configure(jws, pool_size=0)
    yield jws
    stop_agent(jws)


def start(ws: Workspace, **env: str) -> dict[str, Any]:
    """Start the agent (with ``env`` added to its environment) and wait until it answers."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client.start_agent(ws.path)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return wait_for(lambda: status(ws))


def mlws(ws: Workspace, *args: str, agent: bool = True, cwd: Path | None = None,
         extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLWS_JOB_AGENT": "1" if agent else "0", "PYTHONPATH": str(ROOT),
           **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "jupyter_mlws.cli", *args, "-w", str(ws.path)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def submitted(ws: Workspace) -> int:
    return int((status(ws) or {}).get("submitted", 0))


def stored(ws: Workspace, job_id: str) -> dict[str, Any]:
    job = ws.jobs.wait(job_id, timeout=300)
    assert job.status == "Completed", ws.jobs.logs(job_id)
    data = {k: v for k, v in job.public_dict().items() if k not in VOLATILE}
    data["params"] = ws.jobs.detail(job_id).params
    return data


def probe_notebook(notebook: Any) -> Path:
    return notebook("import os\nprint('MSG', msg, 'PROBE', os.environ.get('FAST_PROBE'))",
                    parameters="msg = None")


def test_fast_and_normal_paths_print_and_store_the_same(fws: Workspace, notebook) -> None:
    nb = probe_notebook(notebook)
    start(fws)
    args = ["job", "notebook", nb.name, "-p", "msg", "'hi there'", "--experiment", "exp1"]
    probe = {"FAST_PROBE": "from-the-submitter"}
    fast = mlws(fws, *args, "-o", "json", cwd=nb.parent, extra_env=probe)
    assert submitted(fws) == 1, fast.stderr  # the agent took it
    normal = mlws(fws, *args, "-o", "json", agent=False, cwd=nb.parent, extra_env=probe)
    assert submitted(fws) == 1
    assert fast.returncode == normal.returncode == 0, (fast.stderr, normal.stderr)
    a, b = json.loads(fast.stdout), json.loads(normal.stdout)
    assert JOB_ID.match(a["id"]) and JOB_ID.match(b["id"]) and a["id"] != b["id"]
    assert {k: v for k, v in a.items() if k not in VOLATILE} == \
        {k: v for k, v in b.items() if k not in VOLATILE}
    assert a["status"] == "Queued"
    fast_job, normal_job = stored(fws, a["id"]), stored(fws, b["id"])
    assert fast_job == normal_job
    assert fast_job["params"] == {"msg": "hi there"}
    for job_id in (a["id"], b["id"]):  # the runner ran with the submitter's environment
        out = fws.jobs.paths(job_id).notebook_out.read_text()
        assert "MSG hi there PROBE from-the-submitter" in out
    # the table output: the same lines, with the job's id
    table = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "1")
    assert submitted(fws) == 2
    job_id = table.stdout.split()[1].rstrip(":")
    assert table.stdout == (f"Job {job_id}: Queued\n"
                            f"  follow it with `mlws job stream {job_id}`\n")
    assert fws.jobs.wait(job_id, timeout=300).status == "Completed"


@pytest.mark.parametrize("case", ["parameter", "environment", "compute", "notebook", "timeout"])
def test_errors_are_the_same_both_ways(fws: Workspace, notebook, case: str) -> None:
    nb = probe_notebook(notebook)
    start(fws)
    args = {"parameter": [str(nb), "-p", "nope", "1"],
            "environment": [str(nb), "-e", "no-such-env"],
            "compute": [str(nb), "-c", "no-such-compute"],
            "notebook": [str(nb.parent / "missing.ipynb")],
            "timeout": [str(nb), "--timeout", "-3"]}[case]
    fast = mlws(fws, "job", "notebook", *args)
    normal = mlws(fws, "job", "notebook", *args, agent=False)
    assert fast.returncode == normal.returncode != 0
    assert fast.stderr == normal.stderr and fast.stderr.strip()
    assert "Traceback" not in fast.stderr
    assert fast.stdout == normal.stdout == ""
    answered = int((status(fws) or {}).get("submit_errors", 0))
    assert answered == (0 if case == "notebook" else 1)  # (click checks the path first)
    assert fws.jobs.list() == []


def test_what_the_fast_path_does_not_take_goes_the_normal_way(fws: Workspace,
                                                             notebook) -> None:
    nb = notebook("print(msg, x)", parameters="msg = None\nx = 0")
    start(fws)
    with_input = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "a", "-i", "x=3")
    assert with_input.returncode == 0, with_input.stderr
    other_env = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "b",
                     extra_env={"MLWS_STORE_TIMEOUT": "7"})  # the agent's differs: refused
    assert other_env.returncode == 0, other_env.stderr
    assert submitted(fws) == 0
    jobs = fws.jobs.list()
    assert len(jobs) == 2
    for job in jobs:
        assert fws.jobs.wait(job.id, timeout=300).status == "Completed"


@pytest.mark.parametrize("fault", ["on-request", "after-record"])
def test_an_agent_killed_before_its_reply_submits_the_job_once(fws: Workspace, notebook,
                                                                fault: str) -> None:
    nb = probe_notebook(notebook)
    agent = start(fws, MLWS_AGENT_TEST_FAULT=fault)
    done = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "once")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not alive(agent["pid"]))  # it died in the middle of the request
    job_id = done.stdout.split()[1].rstrip(":")
    jobs = fws.jobs.list()
    assert [j.id for j in jobs] == [job_id]  # one job, the one printed
    job = fws.jobs.wait(job_id, timeout=300)
    assert job.status == "Completed", fws.jobs.logs(job_id)
    assert "MSG once" in fws.jobs.paths(job_id).notebook_out.read_text()
    assert not list((agent_dir(fws.path) / "requests").glob("*"))  # no marker left


def test_the_cli_starts_the_agent_for_the_next_submission(fws: Workspace, notebook) -> None:
    nb = probe_notebook(notebook)
    assert status(fws) is None
    first = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "1")
    assert first.returncode == 0, first.stderr
    wait_for(lambda: status(fws))  # started in the background by the CLI
    second = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "2")
    assert second.returncode == 0, second.stderr
    assert submitted(fws) == 1
    for job in fws.jobs.list():
        assert fws.jobs.wait(job.id, timeout=300).status == "Completed"


def test_no_agent_is_started_when_it_is_turned_off(fws: Workspace, notebook) -> None:
    nb = probe_notebook(notebook)
    configure(fws, enabled=False)
    done = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "1", "--wait")
    assert done.returncode == 0, done.stderr
    assert "Completed" in done.stdout
    assert status(fws) is None and not (agent_dir(fws.path) / "agent.json").exists()


def test_the_cli_talks_only_to_the_recorded_agent(fws: Workspace, notebook) -> None:
    """A socket served by a process other than the recorded agent gets nothing."""
    nb = probe_notebook(notebook)
    folder = agent_dir(fws.path)
    folder.mkdir(mode=0o700, exist_ok=True)
    impostor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    impostor.bind(str(folder / "agent.sock"))
    impostor.listen(4)
    impostor.settimeout(0.5)
    (folder / "agent.json").write_text(json.dumps(
        {"pid": os.getpid(), "start_time": 1, "token": "not-ours"}))
    try:
        done = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "1")
        assert done.returncode == 0, done.stderr
        with contextlib.suppress(TimeoutError):
            conn, _ = impostor.accept()
            conn.settimeout(2)
            assert conn.recv(1024) == b""  # connected, checked the peer, sent nothing
            conn.close()
    finally:
        impostor.close()
    job_id = done.stdout.split()[1].rstrip(":")
    assert fws.jobs.wait(job_id, timeout=300).status == "Completed"


def test_a_lost_reply_is_recognised_by_its_request_id(fws: Workspace, notebook) -> None:
    """The marker the agent leaves names the job; without one the normal path submits."""
    from jupyter_mlws.agent.intake import recover

    assert recover(fws, "0" * 32) is None
    path = marker(fws.path, "f" * 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("keen_otter_abcdef")  # recorded by a dead agent, but never stored
    assert recover(fws, "f" * 32) is None
    assert not path.exists()


def test_wait_through_the_agent_prints_and_exits_as_the_normal_path(fws: Workspace,
                                                                    notebook) -> None:
    good = probe_notebook(notebook)
    bad = notebook("raise ValueError('boom ' + str(msg))", parameters="msg = None")
    start(fws)
    for nb, code, state in ((good, 0, "Completed"), (bad, 1, "Failed")):
        for output in ("table", "json"):
            args = ["job", "notebook", str(nb), "-p", "msg", "7", "--wait", "-o", output]
            fast = mlws(fws, *args)
            normal = mlws(fws, *args, agent=False)
            assert fast.returncode == normal.returncode == code, (fast.stderr, normal.stderr)
            if output == "json":
                a, b = json.loads(fast.stdout), json.loads(normal.stdout)
                assert a["status"] == b["status"] == state
                assert {k: v for k, v in a.items() if k not in VOLATILE | {"error"}} == \
                    {k: v for k, v in b.items() if k not in VOLATILE | {"error"}}
                continue
            fast_id, normal_id = fast.stdout.split()[1].rstrip(":"), \
                normal.stdout.split()[1].rstrip(":")
            assert fast.stdout.startswith(f"Job {fast_id}: {state}")
            assert fast.stdout.replace(fast_id, "ID") == normal.stdout.replace(normal_id, "ID")
    found = status(fws) or {}
    assert found.get("submitted") == found.get("waits_answered") == 4


def test_the_environment_is_compared_by_an_hmac_of_what_a_submission_reads() -> None:
    from jupyter_mlws.agent.fast import env_digest

    base = {"HOME": "/home/u", "MLWS_STORE_URI": "postgresql://u:pw@db/x", "TERM": "xterm"}
    digest = env_digest(base, "token")
    assert "pw" not in digest and len(digest) == 64
    assert env_digest({**base, "TERM": "dumb", "PWD": "/elsewhere"}, "token") == digest
    assert env_digest({**base, "MLWS_SECRET_KEY": "k", "MLWS_JOB_AGENT": "1"}, "token") == digest
    assert env_digest({**base, "MLWS_STORE_URI": "sqlite:///x"}, "token") != digest
    assert env_digest({**base, "AWS_PROFILE": "other"}, "token") != digest
    assert env_digest(base, "another agent's token") != digest


def test_the_agents_intake_submits_without_the_cli(jws: Workspace, notebook) -> None:
    """The agent builds the request and the printed text with the facade's module, not the
    CLI's: the same text, and no ``jupyter_mlws.cli`` module loaded."""
    nb = notebook("print(msg)", parameters="msg = None")
    code = ("import sys\nfrom jupyter_mlws import Workspace\n"
            "from jupyter_mlws.agent import intake, server\n"
            "ws = Workspace.open(sys.argv[1])\n"
            "print(intake._submit(ws, {'notebook': sys.argv[2], 'parameters': [['msg', 'hi']],"
            " 'output': 'table'}), end='')\n"
            "print(sorted(m for m in sys.modules if m.startswith('jupyter_mlws.cli')))\n")
    out = subprocess.run([sys.executable, "-c", code, str(jws.path), str(nb)],
                         capture_output=True, text=True, env={**os.environ,
                                                              "PYTHONPATH": str(ROOT)},
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    job_id = lines[0].split(":")[0].removeprefix("Job ")
    assert JOB_ID.match(job_id), out.stdout
    assert lines == [f"Job {job_id}: Queued", f"  follow it with `mlws job stream {job_id}`",
                     "[]"]
    assert jws.jobs.detail(job_id).params == {"msg": "hi"}


def test_the_cli_hands_a_submission_over_without_loading_click(fws: Workspace,
                                                              notebook) -> None:
    """The fast path is the standard library's: neither click nor the store is imported."""
    nb = probe_notebook(notebook)
    start(fws)
    done = mlws(fws, "job", "notebook", str(nb), "-p", "msg", "1",
                extra_env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.returncode == 0, done.stderr
    assert submitted(fws) == 1
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "jupyter_mlws.agent.fast" in imported
    assert not {"click", "pydantic", "sqlalchemy", "yaml", "jupyter_mlws.cli._app"} & imported
    job_id = done.stdout.split()[1].rstrip(":")
    assert fws.jobs.wait(job_id, timeout=300).status == "Completed"
