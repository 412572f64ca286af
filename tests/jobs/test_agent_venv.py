"""Warm kernels for notebook jobs in an environment's cached venv (issue 15): each warm worker
runs from an overlay of the cached venv that the agent made ahead of time, which becomes the
job's own (its ``pip install`` goes there) and is removed when the job ends.

Real agent, workers, kernels and papermill; a real venv built by the venv builder.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from jupyter_mlws import Workspace
from jupyter_mlws.agent import client
from jupyter_mlws.agent.overlays import overlays_dir
from jupyter_mlws.environments.venv_builder import venv_python
from tests.jobs.test_agent import aws, configure, job_pid, status, wait_for  # noqa: F401
from tests.jobs.test_job_venv import built_venv, make_wheel, tree_digest

REQUIREMENTS = ["ipykernel==7.4.0", "papermill==2.7.0", "six==1.16.0", "pip"]

PROBE = ("import importlib, os, sys\nimport six\n"
         "print('PREFIX', sys.prefix)\nprint('SIX', six.__version__)\n"
         "print('PATH2', os.pathsep.join(os.environ['PATH'].split(os.pathsep)[:2]))\n"
         "print('LEAK', 'present' if 'leak' in globals() else 'absent')\n"
         "importlib.invalidate_caches()\n"
         "try:\n    import mlws_warm_tiny\n    print('TINY', mlws_warm_tiny.VALUE)\n"
         "except ImportError:\n    print('TINY', 'absent')\n")


def build(ws: Workspace) -> Path:
    """The environment's cached venv (built once per session, shared as on a user's machine)."""
    env = ws.environments.create("warm-env", pip_requirements=REQUIREMENTS)
    return built_venv(ws, env)


def warm_for(ws: Workspace, python: Path, but: tuple[int, ...] = ()) -> dict[str, list]:
    """Wait for a ready warm worker of ``python`` (not one of ``but``): its PIDs and overlays."""
    def ready() -> dict[str, list] | None:
        s = status(ws)
        pids = (s or {}).get("workers", {}).get(str(python), [])
        if s and s["ready"] and pids and not set(pids) & set(but):
            return {"pids": pids, "overlays": s["overlays"][str(python)]}
        return None

    return wait_for(ready)


def printed(ws: Workspace, job_id: str) -> dict[str, str]:
    """``KEY value`` lines the notebook printed, from the stored output notebook."""
    import json

    out: dict[str, str] = {}
    for cell in json.loads(ws.jobs.paths(job_id).notebook_out.read_text())["cells"]:
        for o in cell.get("outputs", []):
            for line in "".join(o.get("text", "")).splitlines():
                key, _, value = line.partition(" ")
                out[key] = value
    return out


def test_a_cached_venv_job_runs_warm_in_its_own_overlay(aws: Workspace, notebook,  # noqa: F811
                                                         tmp_path: Path) -> None:
    cached = build(aws)
    python = venv_python(cached)
    before = tree_digest(cached)
    wheel = make_wheel(tmp_path, "mlws_warm_tiny", "installed-by-job-1")
    installer = notebook(
        PROBE, "leak = 1\nimport subprocess\n"
        f"subprocess.run(['pip', 'install', '--no-index', '--no-deps', {str(wheel)!r}],"
        " check=True)\nimportlib.invalidate_caches()\nimport mlws_warm_tiny\n"
        "print('INSTALLED', mlws_warm_tiny.VALUE)", parameters="msg = None")
    reader = notebook(PROBE, parameters="msg = None")

    # the environment's first job starts cold (no agent) and has the agent warm its venv
    cold = aws.jobs.submit_notebook(reader, {"msg": "0"}, environment="warm-env")
    assert aws.jobs.wait(cold.id, timeout=600).status == "Completed", aws.jobs.logs(cold.id)
    assert printed(aws, cold.id)["PREFIX"] == str(aws.jobs.paths(cold.id).venvs / cached.name)
    assert not aws.jobs.paths(cold.id).venvs.exists()  # its overlay went with it
    first = warm_for(aws, python)

    one = aws.jobs.submit_notebook(installer, {"msg": "1"}, environment="warm-env")
    done = aws.jobs.wait(one.id, timeout=600)
    assert done.status == "Completed", aws.jobs.logs(one.id)
    assert job_pid(aws, one.id) in first["pids"]  # it ran on the warm worker...
    got = printed(aws, one.id)
    overlay = Path(got["PREFIX"])  # ...in that worker's overlay of the cached venv
    assert overlay.parent.parent == overlays_dir(aws.path) and overlay.name == cached.name
    assert str(overlay / "bin" / "python") in first["overlays"]
    assert got["SIX"] == "1.16.0" and got["INSTALLED"] == "installed-by-job-1"
    assert got["PATH2"] == os.pathsep.join([str(overlay / "bin"), str(cached / "bin")])
    assert not overlay.parent.exists()  # removed when the job ended

    second = warm_for(aws, python, but=tuple(first["pids"]))
    two = aws.jobs.submit_notebook(reader, {"msg": "2"}, environment="warm-env")
    assert aws.jobs.wait(two.id, timeout=600).status == "Completed", aws.jobs.logs(two.id)
    assert job_pid(aws, two.id) in second["pids"]
    got = printed(aws, two.id)
    assert got["LEAK"] == "absent" and got["TINY"] == "absent"  # nothing of job 1
    assert Path(got["PREFIX"]) != overlay and Path(got["PREFIX"]).parent.parent == overlay.parent.parent
    assert not Path(got["PREFIX"]).exists()
    assert tree_digest(cached) == before  # the cached venv: not one file changed
    assert status(aws)["served"] == 2  # type: ignore[index]


def test_a_cached_venv_job_ends_correctly_when_the_agent_is_killed(
        aws: Workspace, notebook, tmp_path: Path) -> None:  # noqa: F811
    python = venv_python(build(aws))
    gate = tmp_path / "gate"
    nb = notebook(f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n"
                  "    time.sleep(0.05)\nimport sys\nprint('PREFIX', sys.prefix)",
                  parameters="msg = None")
    client.start_agent(aws.path, python=str(python))
    pool = warm_for(aws, python)
    agent = status(aws)
    assert agent is not None
    job = aws.jobs.submit_notebook(nb, {"msg": "x"}, environment="warm-env")
    wait_for(lambda: aws.jobs.get(job.id).status == "Running")
    assert job_pid(aws, job.id) in pool["pids"]
    refilled = warm_for(aws, python, but=tuple(pool["pids"]))
    os.kill(agent["pid"], signal.SIGKILL)
    gate.touch()
    done = aws.jobs.wait(job.id, timeout=300)
    assert done.status == "Completed", aws.jobs.logs(job.id)
    overlay = Path(printed(aws, job.id)["PREFIX"])
    assert overlay.parent.parent == overlays_dir(aws.path) and not overlay.exists()
    # the killed agent's idle worker exits by itself; the reaper removes its overlay
    for pid in refilled["pids"]:
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists()
                 or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    assert any(overlays_dir(aws.path).iterdir())
    aws.jobs.reap_orphans()
    assert not any(overlays_dir(aws.path).iterdir())


def test_the_interpreters_kept_warm_are_the_recently_asked_for(aws: Workspace) -> None:  # noqa: F811
    import sys

    python = venv_python(build(aws))
    configure(aws, interpreters=1)
    client.start_agent(aws.path, python=sys.executable)
    wait_for(lambda: (s := status(aws)) and s["workers"].get(sys.executable))
    reply, _ = client.request(aws.path, {"op": "claim", "python": str(python)})
    assert reply == {"op": "none"}  # this one starts cold; its interpreter gets the pool
    found = warm_for(aws, python)
    assert list(status(aws)["workers"]) == [str(python)]  # type: ignore[index]
    assert [Path(p).parent.parent.parent.parent for p in found["overlays"]] == [
        overlays_dir(aws.path)]


def room_for_one_worker(ws: Workspace) -> int:
    """Restart the agent with ``memory_mb`` room for one warm worker (measured), not two, once
    its worker of the running interpreter is ready; that room (MB)."""
    import sys

    client.start_agent(ws.path, python=sys.executable)
    first = wait_for(lambda: (s := status(ws)) and s["ready"] and s["per_worker"] and s)
    client.request(ws.path, {"op": "stop"})
    wait_for(lambda: status(ws) is None and not client._agent_running(
        client.agent_dir(ws.path)))
    room = int(first["per_worker"] * 1.8 / 2**20) + 1
    configure(ws, memory_mb=room)
    client.start_agent(ws.path, python=sys.executable)
    wait_for(lambda: (s := status(ws)) and s["ready"] and s["workers"].get(sys.executable))
    return room


def test_the_memory_ceiling_spans_interpreters(aws: Workspace) -> None:  # noqa: F811
    import sys

    python = venv_python(build(aws))
    room = room_for_one_worker(aws)
    assert client.request(aws.path, {"op": "claim", "python": str(python)})[0] == {"op": "none"}
    # the interpreter asked for last takes the room of the other one's idle worker
    found = warm_for(aws, python)
    after = status(aws)
    assert after is not None and after["workers"].get(sys.executable) == []
    assert after["workers"][str(python)] == found["pids"]
    assert after["memory"] <= room * 2**20


def test_two_interpreters_taking_turns_keep_one_warm(aws: Workspace, notebook) -> None:  # noqa: F811
    """Room for one warm worker, jobs of two interpreters in turn: a job of the other
    interpreter does not evict the worker of the one a job claimed a moment ago (before, each
    refill evicted the worker the next job needed: every job started cold)."""
    import sys

    python = venv_python(build(aws))
    room_for_one_worker(aws)
    assert client.request(aws.path, {"op": "claim", "python": str(python)})[0] == {"op": "none"}
    found = warm_for(aws, python)  # the warmed-only interpreter made room
    assert client.request(aws.path, {"op": "claim", "python": sys.executable})[0] == {
        "op": "none"}
    after = status(aws)
    assert after is not None and after["workers"].get(sys.executable) == []
    assert after["workers"][str(python)] == found["pids"]  # kept for the next job
    job = aws.jobs.submit_notebook(notebook("print('ran')", parameters="msg = None"),
                                   {"msg": "x"}, environment="warm-env")
    assert aws.jobs.wait(job.id, timeout=600).status == "Completed", aws.jobs.logs(job.id)
    assert job_pid(aws, job.id) in found["pids"]  # it ran warm
