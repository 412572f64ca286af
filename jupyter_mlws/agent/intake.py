"""The agent's side of ``mlws job notebook``'s fast path (the CLI's side is :mod:`.fast`).

The agent checks the request is one it can take as the submitter would (same workspace, package,
interpreter, and the same values of the environment variables a submission reads), then submits
in the submitter's working folder and umask through the same code as the CLI, records the request
id before the job (:class:`Intake`), and replies with what the CLI prints; the runner's start is
left to the CLI (it needs the submitter's environment). Refusals record nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.agent import agent_dir
from jupyter_mlws.agent.fast import REQUESTS_DIRNAME, env_digest, package_parent
from jupyter_mlws.agent.wire import Channel

if TYPE_CHECKING:
    from jupyter_mlws.jobs.launch import Launch
    from jupyter_mlws.jobs.paths import JobPaths

#: The options of ``mlws job notebook`` the agent takes (``-i``/``--out`` may need stored
#: credentials, which the agent never opens: those go the normal path).
OPTIONS = {"notebook", "parameters", "code", "environment", "compute", "experiment",
           "timeout", "output"}
MARKER_MAX_AGE_S = 24 * 3600


def marker(workspace: str | Path, request_id: str) -> Path:
    return agent_dir(workspace) / REQUESTS_DIRNAME / request_id


class Intake:
    """The submission hook (``jobs.submit.SUBMIT_HOOK``) of one fast-path request."""

    def __init__(self, workspace: Path, request_id: str) -> None:
        self.marker = marker(workspace, request_id)
        self.job_id: str | None = None
        self.root: Path | None = None
        self.runner_log: Path | None = None
        self.ticket: tuple[Path, Any] | None = None
        self.keep = False  # a job recorded without a reply: its marker stays for the CLI

    def before_record(self, job_id: str) -> None:
        """Record the job's id for the request (whole or not at all; not fsynced: it serves
        a CLI of this boot, gone with the machine)."""
        from jupyter_mlws.fileio import write_text_atomic

        self.marker.parent.mkdir(mode=0o700, exist_ok=True)
        write_text_atomic(self.marker, job_id, mode=0o600, durable=False)
        self.job_id = job_id

    def start_runner(self, paths: JobPaths, launch: Launch) -> None:
        from jupyter_mlws.jobs import queue

        self.root, self.runner_log = paths.root, paths.logs / "runner.log"
        _fault("after-record")
        if launch.kind != "pipeline":
            self.ticket = queue.issue_ticket(Path(launch.slot_dir), launch.job_id)

    def close(self) -> None:
        if self.ticket is not None:
            self.ticket[1].close()
            self.ticket = None
        if not self.keep:
            with contextlib.suppress(OSError):
                self.marker.unlink()


def _fault(where: str) -> None:
    """Tests kill the agent at ``where`` (``MLWS_AGENT_TEST_FAULT``) to check that a lost reply
    submits the job once."""
    if os.environ.get("MLWS_AGENT_TEST_FAULT") == where:
        os.kill(os.getpid(), signal.SIGKILL)


def _same_python(theirs: Any) -> bool:
    """The submitter's interpreter is the agent's (the same file in the same folder)."""
    mine = sys.executable
    return isinstance(theirs, str) and (theirs == mine or (
        os.path.dirname(theirs) == os.path.dirname(mine)
        and os.path.realpath(theirs) == os.path.realpath(mine)))


def refusal(workspace: Path, request: dict[str, Any]) -> str | None:
    """Why the agent cannot submit ``request`` as the CLI would; ``None`` when it can."""
    from jupyter_mlws.agent.settings import read_settings
    from jupyter_mlws.jobs.process_identity import TOKEN_VAR

    options = request.get("options")
    if not isinstance(options, dict) or set(options) - OPTIONS:
        return "options the fast path does not take"
    if request.get("workspace") != str(workspace):
        return "another workspace"
    if request.get("package") != package_parent() or not _same_python(request.get("python")):
        return "another installation of jupyter_mlws or another interpreter"
    if request.get("env") != env_digest(os.environ, os.environ.get(TOKEN_VAR, "")):
        return "another environment"
    if read_settings(workspace) is None:
        return "the job agent is turned off"
    return None


def _submit(ws: Any, o: dict[str, Any]) -> str:
    """Submit as ``mlws job notebook`` does; what it prints."""
    from jupyter_mlws.jobs.notebook_request import notebook_request, submitted_text

    pairs = [(str(p[0]), str(p[1])) for p in o.get("parameters") or []]
    request = notebook_request(
        str(o["notebook"]), pairs, o.get("code"), o.get("environment"), o.get("compute"),
        (), (), o.get("experiment"), o.get("timeout"))
    job = ws.jobs.submit(request)
    return submitted_text(job, waited=False, output=str(o.get("output") or "table"))[0]


class Workspaces:
    """The agent's open workspace, opened again when ``workspace.yaml`` changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ws: Any = None
        self._stamp: tuple[int, int] | None = None
        self.submitted = 0  # jobs submitted through the fast path
        self.errors = 0  # typed errors answered (as the normal path says them)

    def get(self) -> Any:
        st = (self.path / "workspace.yaml").stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if self._ws is None or stamp != self._stamp:
            from jupyter_mlws.workspace import Workspace

            if self._ws is not None:
                with contextlib.suppress(Exception):
                    self._ws.close()
            self._ws, self._stamp = Workspace.open(self.path), stamp
        return self._ws


def handle_submit(workspaces: Workspaces, chan: Channel, request: dict[str, Any],
                  fds: list[int]) -> None:
    """Serve one ``submit`` request (the agent's single thread is busy until it is done)."""
    from jupyter_mlws.errors import MlwsError
    from jupyter_mlws.jobs.submit import SUBMIT_HOOK

    for fd in fds[1:]:
        os.close(fd)
    request_id = str(request.get("id") or "")
    if len(fds) < 1 or not (request_id.isascii() and request_id.isalnum()):
        for fd in fds[:1]:
            os.close(fd)
        chan.send({"op": "refused", "reason": "no working folder or request id"})
        return
    intake = Intake(workspaces.path, request_id)
    _fault("on-request")
    try:
        reason = refusal(workspaces.path, request)
        if reason is not None:
            chan.send({"op": "refused", "reason": reason})
            return
        try:
            ws = workspaces.get()
        except Exception as exc:  # the normal path says what is wrong with the workspace
            chan.send({"op": "refused", "reason": f"{type(exc).__name__}: {exc}"})
            return
        hook = SUBMIT_HOOK.set(intake)
        mask = os.umask(int(request.get("umask", 0o022)) & 0o777)
        try:
            os.fchdir(fds[0])
            text = _submit(ws, request["options"])
        except MlwsError as exc:
            workspaces.errors += 1
            chan.send({"op": "error", "text": f"error: {exc}\n"})
            return
        except Exception as exc:  # a bug: nothing recorded -> the normal path; else lost
            if intake.job_id is None:
                chan.send({"op": "refused", "reason": f"{type(exc).__name__}: {exc}"})
            intake.keep = True
            return
        finally:
            SUBMIT_HOOK.reset(hook)
            os.umask(mask)
            os.chdir(workspaces.path)
        workspaces.submitted += 1
        _hand_over(ws, chan, intake, text)
    finally:
        os.close(fds[0])
        intake.close()


def _hand_over(ws: Any, chan: Channel, intake: Intake, text: str) -> None:
    """Reply with the job and its queue ticket; the CLI starts the runner and says so."""
    from jupyter_mlws.jobs.model import JobStatus

    ticket = intake.ticket
    chan.send({"op": "submitted", "job": intake.job_id, "text": text, "root": str(intake.root),
               "runner_log": str(intake.runner_log),
               "ticket": str(ticket[0]) if ticket else None},
              fds=[ticket[1].fileno()] if ticket else None)
    if ticket is not None:
        ticket[1].close()
        intake.ticket = None
    chan.sock.settimeout(30)
    with contextlib.suppress(OSError, ValueError):
        answer, _ = chan.recv()
        if answer is not None and answer.get("op") == "start_failed":
            error = f"the runner could not start: {answer.get('error')}"
            ws._store.transition_job(str(intake.job_id), JobStatus.FAILED, message=error,
                                     error=error)
            chan.send({"op": "error", "text": "error: The job's runner could not start: "
                       f"{answer.get('error')}\n"})


def recover(ws: Any, request_id: str) -> Any:
    """After a lost reply: the job the agent recorded for ``request_id`` (its runner started
    now), or ``None`` when it recorded none (then submit as usual)."""
    from jupyter_mlws.errors import NotFoundError
    from jupyter_mlws.jobs.launch import Launch

    path = marker(ws.path, request_id)
    try:
        job_id = path.read_text().strip()
    except OSError:
        return None
    try:
        job = ws.jobs.get(job_id)
    except NotFoundError:
        job = None
    if job is not None:
        paths = ws.jobs.paths(job_id)
        ws.jobs._start_runner(paths, Launch.read(paths.launch))
    path.unlink(missing_ok=True)
    return job


def warm_up(ws: Any) -> None:
    """Do once, before a submission comes, what a first submission would do besides its own
    work: import what it loads on first use, compile nbformat's schema validators and run the
    store's queries once (SQLAlchemy compiles each statement on first use)."""
    import getpass  # noqa: F401 - (who submits: jupyter_mlws.operations.base._user)

    import jupyter_mlws.compute.local  # noqa: F401
    import jupyter_mlws.jobs.inputs  # noqa: F401
    import jupyter_mlws.operations.target_services  # noqa: F401
    from jupyter_mlws.agent.settings import read_settings
    from jupyter_mlws.compute import target_for
    from jupyter_mlws.errors import NotFoundError
    from jupyter_mlws.jobs.nb_schema import v4_validator
    from jupyter_mlws.jobs.submit import creator
    from jupyter_mlws.operations.target_services import WorkspaceTargetServices

    for minor in (4, 5):  # (what Jupyter saves)
        v4_validator(4, minor, ws.cache_dir)
    read_settings(ws.path)
    ws.registries.notes_for(None)
    creator(ws.store, None)
    with contextlib.suppress(Exception):
        target_for(WorkspaceTargetServices(ws), ws.computes.get("local"))
    with contextlib.suppress(NotFoundError):
        ws.jobs.get("no_such_job")
    ws.jobs.list(limit=1)


def forget_old_requests(workspace: Path) -> None:
    """Remove request markers nobody came back for."""
    folder = agent_dir(workspace) / REQUESTS_DIRNAME
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.stat(follow_symlinks=False).st_mtime < time.time() - MARKER_MAX_AGE_S:
                os.unlink(entry.path)


class Waiters:
    """``mlws job notebook --wait`` after a fast submission: the CLI waits on the agent (which
    polls the store as ``ws.jobs.wait`` does) and prints what the normal path would."""

    POLL_S = 0.05

    def __init__(self, workspaces: Workspaces) -> None:
        self.workspaces = workspaces
        self.pending: list[tuple[Channel, str, str]] = []
        self.answered = 0

    def add(self, chan: Channel, request: dict[str, Any]) -> bool:
        """Take the connection (``True``) or refuse the request."""
        if refusal(self.workspaces.path, {**request, "options": {}}) is not None:
            chan.send({"op": "refused"})
            return False
        chan.sock.settimeout(5)
        self.pending.append((chan, str(request.get("job")), str(request.get("output"))))
        return True

    def poll(self) -> None:
        """Answer the waiters whose job ended; drop those whose CLI went away."""
        import select

        keep = []
        for chan, job_id, output in self.pending:
            try:
                if select.select([chan.sock], [], [], 0)[0]:
                    raise OSError("the CLI went away")
                if not self._answer(chan, job_id, output):
                    keep.append((chan, job_id, output))
                    continue
            except Exception:  # noqa: S110 - the CLI then waits the normal way
                pass
            chan.close()
        self.pending = keep

    def _answer(self, chan: Channel, job_id: str, output: str) -> bool:
        from jupyter_mlws.jobs.notebook_request import submitted_text

        ws = self.workspaces.get()
        job = ws.jobs.get(job_id)
        if not job.done:
            return False
        text, code = submitted_text(job, waited=True, output=output)
        chan.send({"op": "ended", "text": text, "code": code})
        self.answered += 1
        return True
