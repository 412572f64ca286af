"""The runner relay: a runner that has ended its job runs the next queued job of its compute in
its loaded process, instead of that job's runner loading everything again.

Every queued job has its own runner (:mod:`.runner`), which waits for a slot with the standard
library only. Once it holds a slot it would import the workspace (SQLAlchemy, pydantic and the
workspace's own modules: about half a second of CPU), which on a busy compute is most of what a
queue costs beyond its jobs' work. So a runner that ends its job *offers* itself for
:data:`OFFER_WAIT_S`: before it gives its slot back it listens on a Unix socket in the compute's
``relay/`` folder, for a job queued already or submitted meanwhile (a sweep's next trial, the
next ``%submit``). The runner that takes the slot sends it, over that socket, the job's folder
and three open descriptors (``SCM_RIGHTS``): its ``runner.lock``, its slot and its log. Then it
exits and the loaded runner runs the job. An offer holds nothing: no lock, no slot.

The locks are never released in between: a passed descriptor shares its lock, so the reaper and
the queue see the job's runner alive throughout, and the queue's order is the slots' order.
Exactly one process runs the job: the loaded runner starts only after the waiting one said
``yours``, and the waiting one runs the job itself whenever the exchange fails before that
(no offer, a dead or silent peer, another user, a runner of a different install or
environment).

Only interchangeable runners relay: what a runner's behaviour depends on (interpreter,
``sys.path``, environment variables, working folder, umask, user and package version) must be
the same on both sides. The offering runner proves nothing and learns nothing of the other's
values: it sends a fresh random challenge, the waiting runner answers with an HMAC of its facts
keyed by that challenge, and the offering runner compares it with its own. The facts include
secrets (``MLWS_SECRET_KEY``, cloud credentials), so they are never put in a name or hashed
without such a one-time key. A runner of another environment is refused and the offer stays
open for the rest of its time. Standard library only.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any, NamedTuple

from jupyter_mlws.agent.wire import Channel, peer_credentials

#: How long a runner that ended its job waits for a waiting one to come (it holds nothing then);
#: ``MLWS_RUNNER_RELAY_WAIT_S`` sets another.
OFFER_WAIT_S = 2.0
WAIT_VAR = "MLWS_RUNNER_RELAY_WAIT_S"
#: How long either side waits for the other during the exchange.
EXCHANGE_S = 10.0
#: A runner runs at most this many jobs, then exits (a bound on anything a job leaves behind).
MAX_JOBS = 100
#: Variables that differ between runners of one submitter by design (the queue's ticket).
_PER_RUNNER_VARS = ("MLWS_QUEUE_TICKET", "MLWS_QUEUE_TICKET_FD")


def relay_dir(slot_dir: Path) -> Path:
    return slot_dir / "relay"


def runner_facts() -> bytes:
    """What two runners must share to run each other's jobs the same way (secrets included:
    only ever used as :func:`proof`'s message)."""
    from jupyter_mlws import __version__

    mask = os.umask(0o022)
    os.umask(mask)
    env = sorted((k, v) for k, v in os.environ.items() if k not in _PER_RUNNER_VARS)
    facts = [sys.executable, sys.path, env, os.getcwd(), mask, os.getuid(), __version__,
             str(Path(__file__).resolve())]
    return json.dumps(facts).encode()


def proof(challenge: str, facts: bytes) -> str:
    """The answer to an offer's one-time ``challenge``: an HMAC of ``facts`` keyed by it."""
    return hmac.new(challenge.encode(), facts, "sha256").hexdigest()


class Handed(NamedTuple):
    """A job handed over: its folder and the open files that hold its locks and its log."""

    job_dir: Path
    runner_lock: IO[str]
    slot: IO[str]
    log_fd: int


def _open_dir(folder: Path) -> int | None:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None


def hand_over(slot_dir: Path, job_dir: Path, runner_lock: IO[str], slot: IO[str]) -> int | None:
    """In a runner that just took a slot: give the job to a loaded runner that offers itself.
    The PID it went to, or ``None`` when this runner must run the job itself."""
    dfd = _open_dir(relay_dir(slot_dir))
    if dfd is None:
        return None
    try:
        facts = runner_facts()
        for name in sorted(n for n in os.listdir(dfd) if n.endswith(".sock")):
            pid = _give(dfd, name, facts, job_dir, runner_lock, slot)
            if pid is not None:
                return pid
        return None
    finally:
        os.close(dfd)


def _give(dfd: int, name: str, facts: bytes, job_dir: Path, runner_lock: IO[str],
          slot: IO[str]) -> int | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(EXCHANGE_S)
    channel = Channel(sock)
    try:
        try:
            sock.connect(f"/proc/self/fd/{dfd}/{name}")  # (a socket path is at most 107 bytes)
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(OSError):  # no one listens: its runner is gone
                os.unlink(name, dir_fd=dfd)
            return None
        pid, uid, _gid = peer_credentials(sock)
        if uid != os.getuid():
            return None
        challenge, _ = channel.recv()
        if not isinstance(challenge, dict) or not isinstance(challenge.get("challenge"), str):
            return None
        channel.send({"proof": proof(challenge["challenge"], facts), "job_dir": str(job_dir)},
                     [runner_lock.fileno(), slot.fileno(), sys.stdout.fileno()])
        answer, _ = channel.recv()
        if answer != {"take": True}:
            return None
        channel.send({"yours": True})
        return pid
    except (OSError, ValueError):
        return None
    finally:
        channel.close()


class Offer:
    """A loaded runner listening, before it gives its slot back, for the next job."""

    def __init__(self, slot_dir: Path, serial: int) -> None:
        folder = relay_dir(slot_dir)
        folder.mkdir(mode=0o700, exist_ok=True)
        self._dfd = _open_dir(folder)
        if self._dfd is None or os.fstat(self._dfd).st_uid != os.getuid():
            self.close()
            raise OSError(f"{folder} is not a folder of this user")
        self._name = f"{os.getpid()}-{serial}.sock"
        self._facts = runner_facts()  # (as they are when the runner offers itself)
        self._slot_dir = slot_dir
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(f"/proc/self/fd/{self._dfd}/{self._name}")
            self._sock.listen(4)
        except OSError:
            self.close()
            raise

    def wait(self, timeout: float | None = None) -> Handed | None:
        """The job a waiting runner hands over, or ``None`` when none did in time. A runner
        that cannot hand over here (another environment) leaves the offer open."""
        if timeout is None:
            try:
                timeout = max(0.0, float(os.environ.get(WAIT_VAR, OFFER_WAIT_S)))
            except ValueError:
                timeout = OFFER_WAIT_S
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                try:
                    self._sock.settimeout(left)
                    conn, _ = self._sock.accept()
                except OSError:
                    return None
                handed = self._exchange(conn)
                if handed is not None:
                    return handed
        finally:
            self.close()  # one job per offer: a later caller falls back at once

    def _exchange(self, conn: socket.socket) -> Handed | None:
        conn.settimeout(EXCHANGE_S)
        channel = Channel(conn)
        try:
            return self._receive(channel)
        except (OSError, ValueError):
            return None
        finally:
            channel.close()  # (closes any descriptor not taken)

    def _receive(self, channel: Channel) -> Handed | None:
        _pid, uid, _gid = peer_credentials(channel.sock)
        if uid != os.getuid():
            return None
        challenge = os.urandom(16).hex()
        channel.send({"challenge": challenge})
        message, fds = channel.recv()
        handed = None
        try:
            handed = self._check(channel, challenge, message, fds)
        finally:
            if handed is None:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        return handed

    def _check(self, channel: Channel, challenge: str, message: dict[str, Any] | None,
               fds: list[int]) -> Handed | None:
        ok = (message is not None and isinstance(message.get("proof"), str)
              and hmac.compare_digest(message["proof"], proof(challenge, self._facts))
              and len(fds) == 3 and isinstance(message.get("job_dir"), str))
        if ok:
            job_dir = Path(message["job_dir"])  # type: ignore[index]
            ok = (_same_file(fds[0], job_dir / "runner.lock")
                  and _same_file(fds[1], *self._slot_dir.glob("slot-*.lock")))
        channel.send({"take": ok})
        if not ok:
            return None
        answer, _ = channel.recv()
        if answer != {"yours": True}:
            return None
        return Handed(job_dir, os.fdopen(fds[0], "a+"), os.fdopen(fds[1], "a+"), fds[2])

    def close(self) -> None:
        if getattr(self, "_sock", None) is not None:
            self._sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self._name, dir_fd=self._dfd)
            self._sock = None  # type: ignore[assignment]
        if self._dfd is not None:
            os.close(self._dfd)
            self._dfd = None


def _same_file(fd: int, *paths: Path) -> bool:
    """Whether the open descriptor ``fd`` is one of ``paths`` (not a link, this user's)."""
    st = os.fstat(fd)
    for path in paths:
        with contextlib.suppress(OSError):
            other = os.lstat(path)
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino) and \
                    st.st_uid == os.getuid():
                return True
    return False


def take_log(log_fd: int) -> None:
    """Make the handed job's log this process's output (the runner writes to it)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)

