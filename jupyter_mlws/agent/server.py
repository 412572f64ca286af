"""The job agent process: ``python -m jupyter_mlws.agent.server WORKSPACE``.

A single-threaded loop (``selectors``) over the listening socket and the warm workers' sockets.
Requests from runners: ``claim`` (a warm worker for an interpreter: its socket is passed over
and the pool refills), ``status`` (PID, CPU time, the pool and its memory), ``stop``; from
``mlws job notebook`` (:mod:`.intake`): ``submit`` and ``wait``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mlws.agent import agent_dir
from jupyter_mlws.agent.settings import JobAgentSettings, read_settings
from jupyter_mlws.agent.wire import Channel, peer_credentials
from jupyter_mlws.jobs.process_identity import TOKEN_VAR, ProcessIdentity, new_token

TICK_S = 1.0
#: A warm worker of an interpreter a job claimed within this long does not make room for
#: another interpreter (see :meth:`Agent._make_room`).
PROTECT_S = 60.0


def rss_bytes(pid: int | None) -> int:
    """Resident memory of ``pid`` (0 when gone)."""
    if not pid:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass
class Worker:
    python: str
    proc: subprocess.Popen[bytes]
    chan: Channel
    token: str
    ready: bool = False
    kernel_pid: int | None = None
    overlay: Path | None = None  # its job's overlay interpreter (cached venvs: see .overlays)
    started: float = field(default_factory=time.monotonic)

    def memory(self) -> int:
        return rss_bytes(self.proc.pid) + rss_bytes(self.kernel_pid)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.chan.close()  # an idle worker exits when the agent's end closes
        with contextlib.suppress(OSError):
            self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class Agent:
    def __init__(self, workspace: Path, settings: JobAgentSettings, listener: socket.socket):
        self.workspace = workspace
        self.settings = settings
        self.listener = listener
        self.pool: dict[str, list[Worker]] = {}
        self.recent: dict[str, float] = {}  # interpreters by the time they were last asked for
        self.claimed: dict[str, float] = {}  # interpreters by the time a job last claimed one
        self.sel = selectors.DefaultSelector()
        self.sel.register(listener, selectors.EVENT_READ, None)
        self.last_used = time.monotonic()
        self.served = 0
        self.running = True
        self.per_worker = 0  # the memory of the largest warm worker seen (with its kernel)
        from jupyter_mlws.agent.intake import Waiters, Workspaces

        self.workspaces = Workspaces(workspace)  # opened for `mlws job notebook` submissions
        self.waiters = Waiters(self.workspaces)

    # --- the pool -------------------------------------------------------------------------

    def memory(self) -> int:
        return sum(w.memory() for ws in self.pool.values() for w in ws)

    def refill(self, python: str) -> None:
        """Start workers for ``python`` up to the pool size, below the memory ceiling (idle
        workers of interpreters asked for less recently make room)."""
        workers = self.pool.setdefault(python, [])
        self.recent.setdefault(python, time.monotonic())
        ceiling = self.settings.memory_mb * 1024 * 1024
        while len(workers) < self.settings.pool_size:
            while self.memory() + self.per_worker > ceiling:
                if not self._make_room(python):
                    return
            worker = self._spawn(python)
            if worker is None:
                break  # (not retried until the next claim)
            workers.append(worker)
            if not all(w.ready for w in workers):
                break  # one at a time: its memory counts before the next one starts

    def _make_room(self, python: str) -> bool:
        """Drop an idle worker of the least recently asked-for other interpreter, unless a job
        claimed one of that interpreter within :data:`PROTECT_S`: two environments taking turns
        then keep one warm, instead of each refill evicting the worker the next job needs."""
        now = time.monotonic()
        older = [w for p, ws in self.pool.items() if p != python
                 and self.recent.get(p, 0.0) < self.recent.get(python, 0.0)
                 and now - self.claimed.get(p, -PROTECT_S) >= PROTECT_S for w in ws]
        if not older:
            return False
        self._drop(min(older, key=self._eviction_order))
        return True

    def _eviction_order(self, worker: Worker) -> tuple[float, float]:
        """Workers of the least recently asked-for interpreter first, the newest first."""
        return self.recent.get(worker.python, 0.0), -worker.started

    def asked_for(self, python: str) -> None:
        """Note a claim for ``python``; past ``interpreters``, the least recently asked-for
        interpreter's pool is dropped."""
        self.recent.pop(python, None)
        self.recent[python] = self.claimed[python] = time.monotonic()
        while len(self.recent) > self.settings.interpreters:
            oldest = next(iter(self.recent))
            del self.recent[oldest]
            self.claimed.pop(oldest, None)
            for worker in list(self.pool.pop(oldest, [])):
                self._drop(worker)

    def _spawn(self, python: str) -> Worker | None:
        """A worker for ``python``; for a cached venv, started from a fresh overlay of it."""
        from jupyter_mlws.compute.job_venv import is_cached_venv, overlay_env
        from jupyter_mlws.crypto import without_secret_key

        # the secret key opens every stored credential: a job's code never needs it
        env = without_secret_key()
        lib = env.get("MLWS_AGENT_PYTHONPATH")
        if lib:
            env["PYTHONPATH"] = lib
        overlay, lock_fd, exe = None, None, python
        if is_cached_venv(python):
            from jupyter_mlws.agent import overlays

            try:
                overlay, lock_fd = overlays.prepare(self.workspace, python)
            except Exception:  # noqa: BLE001 - no warm worker: its jobs start cold
                return None
            env = overlay_env(env, overlay, Path(python))
            exe = str(overlay)
        mine, theirs = socket.socketpair()
        token = new_token()
        env[TOKEN_VAR] = token
        try:
            proc = subprocess.Popen(
                [exe, "-m", "jupyter_mlws.agent.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(), *([lock_fd] if lock_fd is not None else [])),
                env=env, cwd=str(self.workspace), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            mine.close()
            if overlay is not None:
                from jupyter_mlws.agent import overlays

                overlays.remove(self.workspace, overlay)
            return None
        finally:
            theirs.close()
            if lock_fd is not None:
                os.close(lock_fd)  # the worker holds the overlay's lock now
        worker = Worker(python, proc, Channel(mine), token, overlay=overlay)
        self.sel.register(mine, selectors.EVENT_READ, worker)
        return worker

    def _drop(self, worker: Worker, *, stop: bool = True) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(worker.chan.sock)
        with contextlib.suppress(ValueError):
            self.pool.get(worker.python, []).remove(worker)
        if stop:
            worker.stop()
            if worker.overlay is not None:  # (a claimed worker's overlay is its job's)
                from jupyter_mlws.agent import overlays

                overlays.remove(self.workspace, worker.overlay)

    def on_worker(self, worker: Worker) -> None:
        message, _ = worker.chan.recv()
        if message is not None and message.get("op") == "ready":
            worker.ready = True
            worker.kernel_pid = message.get("kernel_pid")
            self.per_worker = max(self.per_worker, worker.memory())
            self._enforce_ceiling()
            self.refill(worker.python)
            return
        self._drop(worker)  # it failed to start or died: not retried until the next claim

    def _enforce_ceiling(self) -> None:
        ceiling = self.settings.memory_mb * 1024 * 1024
        while self.memory() > ceiling:
            idle = [w for ws in self.pool.values() for w in ws]
            if not idle:
                return
            self._drop(min(idle, key=self._eviction_order))

    # --- requests ------------------------------------------------------------------------

    def on_client(self) -> None:
        conn, _ = self.listener.accept()
        chan = Channel(conn)
        kept = False
        try:
            _pid, uid, _gid = peer_credentials(conn)
            if uid != os.getuid():
                return
            conn.settimeout(30)
            request, fds = chan.recv()
            if request is not None and request.get("op") == "submit":
                self.last_used = time.monotonic()
                from jupyter_mlws.agent.intake import handle_submit

                with contextlib.suppress(Exception):  # (the CLI then takes the normal path)
                    handle_submit(self.workspaces, chan, request, fds)
            elif request is not None and request.get("op") == "wait":
                kept = self.waiters.add(chan, request)
            elif request is not None:
                for fd in fds:
                    os.close(fd)
                self.handle(chan, request)
        except (OSError, ValueError):
            pass
        finally:
            if not kept:
                chan.close()

    def handle(self, chan: Channel, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "claim":
            self.last_used = time.monotonic()
            python = str(request.get("python"))
            self.asked_for(python)
            ready = [w for w in self.pool.get(python, []) if w.ready]
            if not ready:
                chan.send({"op": "none"})
                self.refill(python)
                return
            worker = ready[0]
            chan.send({"op": "worker", "pid": worker.proc.pid, "token": worker.token,
                       "kernel_pid": worker.kernel_pid,
                       "overlay": str(worker.overlay) if worker.overlay else None},
                      fds=[worker.chan.sock.fileno()])
            self._drop(worker, stop=False)
            worker.chan.sock.close()  # the runner holds the worker's socket now
            self.served += 1
            self.refill(python)
        elif op == "status":
            times = os.times()
            chan.send({"op": "status", "pid": os.getpid(), "served": self.served,
                       "submitted": self.workspaces.submitted,
                       "submit_errors": self.workspaces.errors,
                       "waits_answered": self.waiters.answered,
                       "cpu_s": times.user + times.system,
                       "children_cpu_s": times.children_user + times.children_system,
                       "memory": self.memory(), "per_worker": self.per_worker,
                       "workers": {p: [w.proc.pid for w in ws] for p, ws in self.pool.items()},
                       "overlays": {p: [str(w.overlay) for w in ws if w.overlay]
                                    for p, ws in self.pool.items()},
                       "ready": sum(w.ready for ws in self.pool.values() for w in ws)})
        elif op == "stop":
            chan.send({"op": "stopping"})
            self.running = False

    def preload(self) -> None:
        """Open the workspace and import what a submission needs, before one comes."""
        from jupyter_mlws.agent.intake import forget_old_requests

        forget_old_requests(self.workspace)
        with contextlib.suppress(Exception):  # (said again, typed, to the first submitter)
            ws = self.workspaces.get()
            import jupyter_mlws.jobs.notebook_request  # noqa: F401
            import jupyter_mlws.jobs.requests  # noqa: F401
            import jupyter_mlws.jobs.submit  # noqa: F401
            from jupyter_mlws.agent.intake import warm_up

            warm_up(ws)

    def serve(self) -> None:
        self.preload()
        while self.running:
            for key, _ in self.sel.select(self.waiters.POLL_S if self.waiters.pending
                                          else TICK_S):
                if key.data is None:
                    self.on_client()
                else:
                    self.on_worker(key.data)
            if self.waiters.pending:
                self.last_used = time.monotonic()
                self.waiters.poll()
            if time.monotonic() - self.last_used > self.settings.idle_timeout_s:
                break
            if not (self.workspace / "workspace.yaml").exists():
                break  # the workspace was deleted
        for workers in list(self.pool.values()):
            for w in list(workers):
                self._drop(w)
        for chan, _job, _output in self.waiters.pending:
            chan.close()  # (they wait the normal way)


def main(argv: list[str]) -> int:
    workspace = Path(argv[0]).resolve()
    settings = read_settings(workspace)
    if settings is None:
        return 0
    folder = agent_dir(workspace)
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    lock = open(folder / "agent.lock", "a+")  # noqa: SIM115 - held for the agent's life
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another agent serves this workspace
    token = os.environ.get(TOKEN_VAR) or ""
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    short = f"/proc/self/fd/{dfd}/agent.sock"  # (a socket path is at most 107 bytes)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(short)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(short)
    os.chmod(short, 0o600)
    listener.listen(64)
    if token:
        ProcessIdentity.of(os.getpid(), token).write(folder / "agent.json")
    try:
        from jupyter_mlws.agent import overlays

        overlays.sweep(workspace)  # what workers of a killed agent left
        agent = Agent(workspace, settings, listener)
        for python in argv[1:]:
            agent.refill(python)
        agent.serve()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(short)
        with contextlib.suppress(OSError):
            (folder / "agent.json").unlink()
        listener.close()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main(sys.argv[1:]))
