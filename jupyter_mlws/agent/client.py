"""The runner's side of the job agent: claim a warm worker, hand it the job, watch it.

Every step that fails (no agent, an agent that is not ours, no warm worker, a worker that
declines or dies before it accepts) returns ``None``: the runner then starts the job itself,
exactly as without the agent. An absent agent is started (detached) for the next jobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.agent import agent_dir
from jupyter_mlws.agent.settings import read_settings
from jupyter_mlws.agent.wire import Channel
from jupyter_mlws.jobs.process_identity import (
    TOKEN_VAR,
    ProcessIdentity,
    has_token,
    new_token,
    start_time,
)

if TYPE_CHECKING:
    from jupyter_mlws.jobs.launch import Launch
    from jupyter_mlws.jobs.paths import JobPaths

NBRUN = ["-m", "jupyter_mlws.jobs.nbrun"]


def _agent_running(folder: Path) -> bool:
    try:
        with open(folder / "agent.lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


def reap_agent(workspace: str | Path) -> bool:
    """Remove what a killed agent left (its socket and identity, the overlays of workers
    gone); ``True`` if there was any. Its idle workers exit by themselves when its end of
    their sockets closes."""
    folder = agent_dir(workspace)
    if not folder.is_dir() or _agent_running(folder):
        return False
    found = False
    for name in ("agent.sock", "agent.json"):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
            found = True
    from jupyter_mlws.agent import overlays

    return bool(overlays.sweep(workspace)) or found


def start_agent(workspace: str | Path, pythonpath: str | None = None,
                python: str | None = None) -> None:
    """Start the workspace's agent, detached (a second one exits at once); it warms kernels
    for ``python`` at once."""
    folder = agent_dir(workspace)
    if _agent_running(folder):
        return
    reap_agent(workspace)
    from jupyter_mlws.jobs.submit import package_dir

    env = {**os.environ, TOKEN_VAR: new_token(), "PYTHONPATH": os.pathsep.join(
        p for p in (str(package_dir().parent), os.environ.get("PYTHONPATH")) if p)}
    env["MLWS_AGENT_PYTHONPATH"] = pythonpath or str(package_dir().parent)
    env.pop("MLWS_SECRET_KEY", None)  # (crypto.ENV_SECRET_KEY: the agent opens no credential)
    subprocess.Popen([sys.executable, "-m", "jupyter_mlws.agent.server", str(workspace),
                      *([python] if python else [])],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, env=env,
                     cwd=str(workspace))


def connect(workspace: str | Path) -> Channel | None:
    """A channel to the workspace's agent, only if the process serving it is the agent that
    recorded itself (same user, PID, start time and token)."""
    from jupyter_mlws.agent.fast import connect as trusted_connect

    got = trusted_connect(Path(workspace))
    return got[0] if got is not None else None


def request(workspace: str | Path, message: dict[str, Any]) -> tuple[dict[str, Any] | None,
                                                                      list[int]]:
    """One request to the agent; ``(None, [])`` when there is no (trusted) agent."""
    chan = connect(workspace)
    if chan is None:
        return None, []
    try:
        chan.send(message)
        return chan.recv()
    except (OSError, ValueError):
        return None, []
    finally:
        chan.sock.close()


class WarmHandle:
    """A job running on a warm worker (not the runner's child: watched through its socket)."""

    def __init__(self, chan: Channel, pid: int, token: str, kernel_pid: int | None) -> None:
        self.chan = chan
        # (workspace, the job's overlay interpreter) for a cached venv: removed at close
        self.overlay: tuple[Path, Path] | None = None
        self.pid = pid
        self.token = token
        self.kernel_pid = kernel_pid
        self.started_at = time.time()
        self._start = start_time(pid)
        self._code: int | None = None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        try:
            readable, _, _ = select.select([self.chan.sock], [], [], 0)
            if not readable:
                return None
            message, _ = self.chan.recv()
        except (OSError, ValueError):
            message = None
        if message is not None and message.get("op") != "exit":
            return None
        # its end closed without a word: it was killed
        self._code = int(message["code"]) if message is not None else -signal.SIGKILL
        return self._code

    def _ours(self, pid: int | None) -> bool:
        return bool(pid) and has_token(int(pid), self.token)  # type: ignore[arg-type]

    def _signal(self, sig: int) -> None:
        for pid in (self.pid, self.kernel_pid):
            if pid and self._ours(pid) and (pid != self.pid or start_time(pid) == self._start):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)

    def stop(self, grace: float = 5.0) -> None:
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self._signal(signal.SIGKILL)
        if self._code is None:
            self._code = -signal.SIGTERM

    def close(self) -> None:
        self._signal(signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.chan.sock.close()
        if self.overlay is not None:  # the job's own overlay: used by no other job
            from jupyter_mlws.agent import overlays

            overlays.remove(*self.overlay)


def warm_start(launch: Launch, python: str, paths: JobPaths) -> WarmHandle | None:
    """Run the notebook job on a warm worker of the agent, or ``None`` (start it cold).
    In a cached venv, the worker runs from an overlay made for it, which becomes the job's."""
    if (launch.kind != "notebook" or launch.compute_kind != "local"
            or launch.argv[1:3] != NBRUN or read_settings(launch.workspace) is None):
        return None
    reply, fds = request(launch.workspace, {"op": "claim", "python": python})
    if reply is None:
        start_agent(launch.workspace, launch.pythonpath, python)
        return None
    if reply.get("op") != "worker" or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return None
    chan = Channel(socket.socket(fileno=fds[0]))
    handle = WarmHandle(chan, int(reply["pid"]), str(reply["token"]), reply.get("kernel_pid"))
    try:
        env = _job_env(launch, python, reply.get("overlay"), handle)
    except ValueError:
        handle.close()
        return None
    if not _hand_over(launch, paths, chan, env):
        handle.close()
        return None
    ProcessIdentity(handle.pid, handle._start, handle.token).write(paths.child_pid)
    return handle


def _job_env(launch: Launch, python: str, overlay: Any, handle: WarmHandle) -> dict[str, str]:
    """The job's environment on the worker: as :func:`jupyter_mlws.compute.local.start_job`
    makes it, in the worker's overlay for a cached venv."""
    from jupyter_mlws.compute.job_venv import is_cached_venv, overlay_env
    from jupyter_mlws.compute.local import local_env

    if not is_cached_venv(python):
        if overlay:
            raise ValueError("an overlay for an interpreter that is not a cached venv")
        return local_env(launch, python)
    from jupyter_mlws.agent import overlays

    if not overlay or overlays.owned_root(launch.workspace, overlay) is None:
        raise ValueError("a cached venv's worker without its overlay")
    handle.overlay = (Path(launch.workspace), Path(overlay))
    return overlay_env(local_env(launch, str(overlay)), Path(overlay), Path(python))


def _hand_over(launch: Launch, paths: JobPaths, chan: Channel, env: dict[str, str]) -> bool:
    """Send the job to the worker; whether it accepted it."""
    from jupyter_mlws.jobs.safe_files import open_log_for_append

    try:
        with open_log_for_append(paths.job_log) as log:
            chan.send({"op": "run", "argv": launch.argv[3:], "cwd": launch.cwd, "env": env},
                      fds=[log.fileno()])
        chan.sock.settimeout(120)
        answer, _ = chan.recv()
        chan.sock.settimeout(None)
    except (OSError, ValueError):
        return False
    return answer is not None and answer.get("op") == "accepted"
