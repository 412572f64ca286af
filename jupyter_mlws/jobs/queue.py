"""A compute's queue: jobs take its slots in submission order, woken by lock hand-off.

The submitter makes a *ticket* for each job, ``queue/<time_ns>-<job id>``, locked (``flock``,
exclusive) before it is visible and passed, still locked, to the job's runner as an open file
descriptor. The runner keeps the lock while it waits and drops it (after removing the ticket)
once it holds a slot. So a ticket that is present and unlocked belongs to a runner that died.

A waiting runner blocks on the lock of the ticket just before its own; when that lock is
released it looks again, and once no ticket is before its own it is the head of the queue and
blocks on the slots (``max_concurrent_jobs`` lock files, freed by the OS when a runner dies).
Nothing sleeps to poll: the kernel wakes the waiter as soon as a lock is released. Blocking
waits run in threads, so the runner can still notice a cancel (its flag file) while it waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TextIO

TICKET_PATH_VAR = "MLWS_QUEUE_TICKET"
TICKET_FD_VAR = "MLWS_QUEUE_TICKET_FD"
CANCEL_CHECK_S = 0.25


def queue_dir(slot_dir: Path) -> Path:
    return slot_dir / "queue"


def issue_ticket(slot_dir: Path, job_id: str) -> tuple[Path, IO[bytes]]:
    """A new ticket at the end of the queue, locked by the returned open file (hand its
    descriptor to the runner; closing every copy of it gives the place up)."""
    folder = queue_dir(slot_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".new-{job_id}-{os.getpid()}"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    f = os.fdopen(fd, "r+b")
    fcntl.flock(fd, fcntl.LOCK_EX)
    path = folder / f"{time.time_ns():020d}-{job_id}"
    os.replace(tmp, path)
    return path, f


def adopt_ticket(environ: dict[str, str] | os._Environ[str], slot_dir: Path,
                 job_id: str) -> tuple[Path, IO[bytes]]:
    """In the runner: the ticket the submitter handed over, or a new one when there is none
    (a runner started by hand) or the descriptor is not that ticket's."""
    path, fd = environ.get(TICKET_PATH_VAR), environ.get(TICKET_FD_VAR)
    if path and fd and fd.isdigit():
        try:
            f = os.fdopen(int(fd), "r+b")
        except OSError:
            f = None
        if f is not None:
            try:
                same = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
            except OSError:
                same = False
            if same and Path(path).parent == queue_dir(slot_dir):
                return Path(path), f
            f.close()
    return issue_ticket(slot_dir, job_id)


def _predecessor(ticket: Path) -> Path | None:
    """The ticket just before ``ticket`` in the queue, if any."""
    try:
        names = [n for n in os.listdir(ticket.parent) if not n.startswith(".")]
    except FileNotFoundError:
        return None
    before = [n for n in names if n < ticket.name]
    return ticket.parent / max(before) if before else None


def _wait_lock(f: IO[bytes], mode: int, stop: Callable[[], bool]) -> bool:
    """Block (in a thread) until ``f`` is locked with ``mode``; ``False`` if ``stop()`` said so
    first."""
    done = threading.Event()

    def take() -> None:
        with contextlib.suppress(OSError, ValueError):
            fcntl.flock(f.fileno(), mode)
            done.set()

    threading.Thread(target=take, daemon=True).start()
    while not done.wait(CANCEL_CHECK_S):
        if stop():
            return False
    return True


def wait_turn(ticket: Path, stop: Callable[[], bool]) -> bool:
    """Block until no live ticket is before ``ticket``; ``False`` when ``stop()`` said so."""
    while (pred := _predecessor(ticket)) is not None:
        try:
            f = open(pred, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue  # it took its slot meanwhile
        try:
            if not _wait_lock(f, fcntl.LOCK_SH, stop):
                return False
            with contextlib.suppress(OSError):
                if os.stat(pred).st_ino == os.fstat(f.fileno()).st_ino:
                    pred.unlink()  # present and unlocked: its runner died
        finally:
            f.close()
    return True


def take_slot(slot_dir: Path, n: int, stop: Callable[[], bool]) -> TextIO | None:
    """One of the ``n`` slots, blocking until one is free; ``None`` when ``stop()`` said so."""
    slot_dir.mkdir(parents=True, exist_ok=True)
    files = [open(slot_dir / f"slot-{i}.lock", "a+") for i in range(n)]  # noqa: SIM115
    for i, f in enumerate(files):
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue
        for other in files[:i] + files[i + 1:]:
            other.close()
        return f
    # none free: wait on all of them; the first granted wins, a later grant is given back
    guard = threading.Lock()
    won: list[TextIO] = []
    gone: list[bool] = []
    got = threading.Event()

    def take(f: TextIO) -> None:
        with contextlib.suppress(OSError, ValueError):
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            with guard:
                if not won and not gone:
                    won.append(f)
                    got.set()
                    return
            f.close()

    for each in files:
        threading.Thread(target=take, args=(each,), daemon=True).start()
    while not got.wait(CANCEL_CHECK_S):
        if stop():
            with guard:
                gone.append(True)
                for held in won:
                    held.close()
            return None
    return won[0]


def leave(ticket: Path, f: IO[bytes]) -> None:
    """Give the place up: remove the ticket, then release its lock (the next runner wakes)."""
    with contextlib.suppress(OSError):
        ticket.unlink()
    with contextlib.suppress(OSError):
        f.close()
