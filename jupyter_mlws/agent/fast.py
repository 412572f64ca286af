"""``mlws job notebook``'s fast path: hand the submission to the running job agent.

Standard library only (the agent already has the store, pydantic and the operations imported):
the CLI finds the workspace, checks that the process behind ``agent.sock`` is the agent that
recorded itself (same user, PID, start time, token), and sends the options as given, its working
folder (as a descriptor), its umask, and an HMAC (keyed by the agent's token) of the environment
variables a submission reads - never a value of one. The agent submits exactly as the normal
path would, but hands the runner's start back: the CLI starts the runner itself, with its own
environment (which may hold secrets), as the normal path does.

Whatever goes wrong before the agent has recorded the job, the CLI takes the normal path. A
reply lost after that (the agent killed) is recognised by the request id: the agent records
``agent/requests/<id>`` (the job's id) before it records the job, and the normal path then takes
that job up instead of submitting a second one (:func:`jupyter_mlws.agent.intake.recover`).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import select
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from jupyter_mlws.agent import agent_dir, switched_off
from jupyter_mlws.agent.wire import Channel, peer_credentials

WORKSPACE_DIRNAME = ".mlws"  # (jupyter_mlws.workspace.WORKSPACE_DIRNAME)
#: How long the CLI waits for an agent that is alive but silent before it stops it.
REPLY_TIMEOUT_S = 120.0
REQUESTS_DIRNAME = "requests"
#: Set once this process asked the agent (``mlws``'s entry): click's command does not ask again.
ATTEMPTED = False
#: Environment variables a submission reads (the store, artifact store, Docker, registries,
#: the user's name and home); the secret key and the agent's own variables are left out.
ENV_PREFIXES = ("MLWS_", "AWS_", "DOCKER_", "PG", "RAY_")
ENV_NAMES = ("HOME", "USER", "LOGNAME", "LNAME", "USERNAME", "XDG_CONFIG_HOME",
             "XDG_CACHE_HOME", "XDG_DATA_HOME", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY",
             "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE",
             "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "BOTO_CONFIG")
ENV_IGNORED = ("MLWS_SECRET_KEY", "MLWS_JOB_AGENT", "MLWS_JOB_TOKEN", "MLWS_QUEUE_TICKET",
               "MLWS_QUEUE_TICKET_FD", "MLWS_WORKSPACE")


def env_digest(environ: Any, key: str) -> str:
    """An HMAC of the variables a submission reads (their values never leave the process)."""
    items = sorted((k, v) for k, v in environ.items()
                   if (k.startswith(ENV_PREFIXES) or k in ENV_NAMES) and k not in ENV_IGNORED
                   and not k.startswith("MLWS_AGENT_"))
    return hmac.new(key.encode(), json.dumps(items).encode(), "sha256").hexdigest()


def package_parent() -> str:
    """The folder holding the ``jupyter_mlws`` package in use."""
    return str(Path(__file__).resolve().parent.parent.parent)


def find_workspace(workspace_path: str | None) -> Path | None:
    """The workspace folder as ``Workspace.open`` finds it; ``None`` when it would fail or
    create one (the normal path says so, or creates it)."""
    def is_ws(p: Path) -> bool:
        return (p / "workspace.yaml").is_file()

    if workspace_path:
        p = Path(workspace_path).expanduser()
        found = p if is_ws(p) else p / WORKSPACE_DIRNAME
    elif os.environ.get("MLWS_WORKSPACE"):
        p = Path(os.environ["MLWS_WORKSPACE"]).expanduser()
        found = p / WORKSPACE_DIRNAME if not is_ws(p) and is_ws(p / WORKSPACE_DIRNAME) else p
    else:
        here = Path.cwd().resolve()
        found = next((f / WORKSPACE_DIRNAME for f in (here, *here.parents)
                      if is_ws(f / WORKSPACE_DIRNAME)), Path.home() / WORKSPACE_DIRNAME)
    return found.resolve() if is_ws(found) else None


def _identity(folder: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(folder / "agent.json", os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(65536))
        return {"pid": int(data["pid"]), "start_time": int(data["start_time"]),
                "token": str(data["token"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_agent(ident: dict[str, Any]) -> bool:
    from jupyter_mlws.jobs.process_identity import has_token, start_time

    return (start_time(ident["pid"]) == ident["start_time"]
            and has_token(ident["pid"], ident["token"]))


def connect(workspace: Path) -> tuple[Channel, dict[str, Any]] | None:
    """A channel to the workspace's agent and its identity, only when the peer is it."""
    folder = agent_dir(workspace)
    ident = _identity(folder)
    if ident is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            sock.connect(f"/proc/self/fd/{dfd}/agent.sock")
        finally:
            os.close(dfd)
        pid, uid, _gid = peer_credentials(sock)
    except OSError:
        sock.close()
        return None
    if uid != os.getuid() or pid != ident["pid"] or not _is_agent(ident):
        sock.close()
        return None
    return Channel(sock), ident


class Submitted:
    """The agent submitted the job; ``text`` is what the normal path prints for it."""

    def __init__(self, job_id: str, text: str) -> None:
        self.job_id = job_id
        self.text = text

    def __repr__(self) -> str:
        return f"Submitted({self.job_id!r})"


class Failed:
    """A typed error, as the normal path prints it (``text`` on stderr, exit 1)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Failed({self.text!r})"


class Lost:
    """The agent went away without a reply: the job may be recorded (see ``request_id``)."""

    def __init__(self, workspace: Path, request_id: str) -> None:
        self.workspace = workspace
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"Lost({self.request_id!r})"


def notebook_options(notebook: str, parameters: Any, code: str | None,
                     environment: str | None, compute: str | None, experiment: str | None,
                     timeout: float | None, output: str) -> dict[str, Any]:
    """The options of ``mlws job notebook`` the agent is sent (``-p`` pairs as lists)."""
    return {"notebook": notebook, "parameters": [list(p) for p in parameters], "code": code,
            "environment": environment, "compute": compute, "experiment": experiment,
            "timeout": timeout, "output": output}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _await(chan: Channel, ident: dict[str, Any]) -> dict[str, Any] | None:
    """The agent's reply; ``None`` when it went away. One alive but silent for too long is
    stopped first, so it cannot record the job after the caller gave up on it."""
    import time

    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while time.monotonic() < deadline:
        readable, _, _ = select.select([chan.sock], [], [], 1.0)
        if readable:
            chan.sock.settimeout(10)
            message, fds = chan.recv()
            chan._fds += fds  # (closed with the channel unless taken)
            return message
        if not _is_agent(ident):
            return None
    with contextlib.suppress(OSError):
        os.kill(ident["pid"], signal.SIGKILL)
    return None


def _context(workspace: Path, token: str) -> dict[str, Any]:
    """What the agent compares with its own before it acts for this process."""
    return {"workspace": str(workspace), "package": package_parent(), "python": sys.executable,
            "env": env_digest(os.environ, token)}


def wait(workspace_path: str | None, job_id: str, output: str) -> tuple[str, int] | None:
    """Wait for the job to end through the agent: what to print and the exit status; ``None``
    when the agent is gone or says no (then wait the normal way)."""
    workspace = find_workspace(workspace_path)
    found = connect(workspace) if workspace is not None else None
    if workspace is None or found is None:
        return None
    chan, ident = found
    try:
        chan.send({"op": "wait", "job": job_id, "output": output,
                   **_context(workspace, ident["token"])})
        while True:
            if select.select([chan.sock], [], [], 1.0)[0]:
                message, _ = chan.recv()
                if message is None or message.get("op") != "ended":
                    return None
                return str(message["text"]), int(message["code"])
            if not _is_agent(ident):
                return None
    except (OSError, ValueError, KeyError):
        return None
    finally:
        chan.close()


def submit(workspace_path: str | None, options: dict[str, Any]) -> Submitted | Failed | Lost | None:
    """Submit through the agent; ``None``: take the normal path (no agent, or it said no)."""
    if switched_off():
        return None
    workspace = find_workspace(workspace_path)
    found = connect(workspace) if workspace is not None else None
    if workspace is None or found is None:
        return None
    chan, ident = found
    request_id = os.urandom(16).hex()
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        chan.send({"op": "submit", "id": request_id, "options": options, "umask": _umask(),
                   **_context(workspace, ident["token"])}, fds=[cwd])
        reply = _await(chan, ident)
        if reply is None:
            return Lost(workspace, request_id)
        op = reply.get("op")
        if op == "error":
            return Failed(str(reply["text"]))
        if op != "submitted":
            return None  # refused: nothing was recorded
        return _start(chan, reply)
    except (OSError, ValueError):
        return Lost(workspace, request_id)
    finally:
        os.close(cwd)
        chan.close()


def _start(chan: Channel, reply: dict[str, Any]) -> Submitted | Failed:
    """Start the job's runner (with this process's environment) and tell the agent."""
    fds = chan._take_fds()
    try:
        ticket = (str(reply["ticket"]), fds[0]) if reply.get("ticket") and fds else None
        spawn_runner(Path(reply["root"]), Path(reply["runner_log"]), package_parent(),
                     ticket=ticket)
    except OSError as exc:
        chan.send({"op": "start_failed", "error": str(exc)})
        answer, _ = chan.recv()
        return Failed(str((answer or {}).get("text") or
                          f"error: The job's runner could not start: {exc}"))
    finally:
        for fd in fds:
            os.close(fd)  # the runner holds the ticket now
    with contextlib.suppress(OSError, ValueError):
        chan.send({"op": "started"})
    return Submitted(str(reply["job"]), str(reply["text"]))


def spawn_runner(root: Path, log_path: Path, package_parent: str | Path,
                 ticket: tuple[str, int] | None = None) -> None:
    """Start the detached runner of the job in ``root`` with this process's environment (and
    the package on its path), handing it its place in the queue (``ticket``: path, descriptor).
    """
    import subprocess

    from jupyter_mlws.jobs.queue import TICKET_FD_VAR, TICKET_PATH_VAR

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(package_parent), os.environ.get("PYTHONPATH")) if p)}
    if ticket is not None:
        env[TICKET_PATH_VAR] = ticket[0]
        env[TICKET_FD_VAR] = str(ticket[1])
    with open(log_path, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "jupyter_mlws.jobs.runner", str(root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
            pass_fds=(ticket[1],) if ticket is not None else (), env=env,
        )
