"""A warm worker: a process of an environment's interpreter with papermill and nbclient imported
and a kernel started, waiting for the one notebook job it will run.

    python -m jupyter_mlws.agent.worker FD

``FD`` is its end of a socket pair with the job agent. It says ``ready`` once the kernel answers;
the agent then hands the socket to a job runner, which sends ``run`` (the nbrun arguments, the
working folder, the environment, and the job's log as a descriptor). The worker puts the kernel
in the job's folder and environment, runs the notebook on it with papermill and reports the exit
code; then it shuts the kernel down and exits. A kernel is never used for a second job.

An idle worker whose agent went away (end of the socket) exits; a busy one whose runner went
away stops its job, as a job started by the runner dies with it. Standard library, papermill
and jupyter_client only (like :mod:`jupyter_mlws.jobs.nbrun`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
from typing import Any

from jupyter_mlws.agent.wire import Channel

KERNEL = "python3"
START_TIMEOUT_S = 120


def _kill_kernel(km: Any) -> None:
    pid = kernel_pid(km)
    if pid:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # its own session: the kernel and what it started


def kernel_pid(km: Any) -> int | None:
    provisioner = getattr(km, "provisioner", None)
    pid = getattr(provisioner, "pid", None) or getattr(
        getattr(provisioner, "process", None), "pid", None)
    return int(pid) if pid else None


def _setup_code(cwd: str, env: dict[str, str]) -> str:
    """Code run (silently, before the notebook) that gives the kernel the job's folder and
    environment, as if it had been started for the job."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return (
        "import os as _o, sys as _s\n"
        f"_o.chdir({cwd!r})\n"
        f"_o.environ.clear(); _o.environ.update({env!r})\n"
        f"_s.path[1:1] = [p for p in {paths!r} if p not in _s.path]\n"
        "del _o, _s\n"
    )


def _prepare_kernel(km: Any, cwd: str, env: dict[str, str]) -> None:
    kc = km.client()
    kc.start_channels()
    try:
        msg_id = kc.execute(_setup_code(cwd, env), silent=True, store_history=False)
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"].get("status") != "ok":
            raise RuntimeError(f"the kernel could not be set up: {reply['content']}")
    finally:
        kc.stop_channels()


def _watch_runner(chan: Channel, km: Any) -> None:
    """The runner's end closing means the runner died: stop the job with it."""
    with contextlib.suppress(OSError, ValueError):
        message, _ = chan.recv()
        if message is not None and message.get("op") != "stop":
            return
    _kill_kernel(km)
    os._exit(1)


def _run(chan: Channel, km: Any, job: dict[str, Any], fds: list[int]) -> int:
    from jupyter_mlws.jobs import nbrun

    argv = [str(a) for a in job["argv"]]
    with open(argv[0], encoding="utf-8") as f:
        kernel, _note = nbrun.choose_kernel(json.load(f))
    if kernel != KERNEL or len(fds) != 1:
        chan.send({"op": "declined", "reason": f"kernel {kernel}"})
        return 3
    os.dup2(fds[0], 1)
    os.dup2(fds[0], 2)
    os.close(fds[0])
    env = {str(k): str(v) for k, v in job["env"].items()}
    _prepare_kernel(km, job["cwd"], env)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(env)
    chan.send({"op": "accepted"})
    threading.Thread(target=_watch_runner, args=(chan, km), daemon=True).start()
    return nbrun.main(argv, km=km)


def main(argv: list[str]) -> int:
    chan = Channel(socket.socket(fileno=int(argv[0])))
    from jupyter_mlws.jobs.nbrun import HIST_ARG, kernel_specs, skip_unused_modules

    skip_unused_modules()
    import papermill  # noqa: F401 - imported now, before a job waits on it
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs())

    def on_term(*_: object) -> None:
        _kill_kernel(km)
        os._exit(143)

    signal.signal(signal.SIGTERM, on_term)
    try:
        # as a cold job's kernel (and nbclient's): no IPython history database written
        km.start_kernel(extra_arguments=[HIST_ARG] if km.ipykernel else [])
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=START_TIMEOUT_S)
        kc.stop_channels()
    except Exception as exc:
        with contextlib.suppress(OSError):
            chan.send({"op": "failed", "error": f"{type(exc).__name__}: {exc}"})
        _kill_kernel(km)
        return 2
    chan.send({"op": "ready", "pid": os.getpid(), "kernel_pid": kernel_pid(km)})
    code = 2
    try:
        job, fds = chan.recv()  # the agent's end closing (it exited): nothing to do
        if job is not None and job.get("op") == "run":
            code = _run(chan, km, job, fds)
            with contextlib.suppress(OSError):
                chan.send({"op": "exit", "code": code})
    finally:
        sys.stdout.flush()
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)
        _kill_kernel(km)
    return code


if __name__ == "__main__":
    code = main(sys.argv[1:])
    import gc

    gc.freeze()  # (exit without collecting every object first: tenths of a second; atexit runs)
    sys.exit(code)
