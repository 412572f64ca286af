"""Keeping blobs alive while registrations run: pins and the collection lock.

A registration (a :class:`PutSession`) *pins* every blob it writes or finds already present, in
a pin file ``pending/<id>.pin`` that it holds an exclusive ``flock`` on for its whole life. The
pin and the presence check (or the rename into place) happen under a *shared* lock on
``.gc.lock``; whatever deletes blobs (garbage collection, the rollback of a failed registration)
holds that lock *exclusively* while it reads the live pins, then the committed references, then
deletes. So a deleter either sees a registration's pin, or the registration waits and then finds
the blob missing and writes it again; and it never misses a version committed before it read the
references. A pin file whose flock can be taken belongs to a process that died: it is ignored and
removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@contextlib.contextmanager
def _flocked(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass
class PutSession:
    """The blobs one registration wrote (``created``) and pinned (``pinned``).

    Made by :meth:`BlobGuard.open_session`; a bare ``PutSession()`` records what it created but pins
    nothing (its blobs are then only protected by garbage collection's age grace).
    """

    created: list[Path] = field(default_factory=list)
    pinned: set[str] = field(default_factory=set)
    pin_file: Path | None = None
    #: The remote store's clock when this session first stored or reused a remote blob
    #: (see :func:`jupyter_mlws.artifacts.remote_gc.confirm`).
    remote_since: float | None = None
    _fd: int | None = None

    def pin(self, sha: str) -> None:
        """Record ``sha`` as in use (call under the guard's shared lock)."""
        if sha in self.pinned:
            return
        if self._fd is not None:
            os.write(self._fd, (sha + "\n").encode())
        self.pinned.add(sha)

    def close(self) -> None:
        """Drop the pins: remove the pin file, then release its lock."""
        if self._fd is None:
            return
        if self.pin_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pin_file.unlink()
        os.close(self._fd)
        self._fd = None


class BlobGuard:
    """The pins and the collection lock of one artifact store folder."""

    def __init__(self, root: Path) -> None:
        self.pending = Path(root) / "pending"
        self.lock_path = Path(root) / ".gc.lock"

    def _ready(self) -> None:
        self.pending.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held while a writer pins a blob and checks for it or renames it into place."""
        self._ready()
        with _flocked(self.lock_path, fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held by whatever deletes blobs, from reading the pins to the last unlink."""
        self._ready()
        with _flocked(self.lock_path, fcntl.LOCK_EX):
            yield

    def open_session(self) -> PutSession:
        """A put session whose pins live until :meth:`PutSession.close`."""
        self._ready()
        path = self.pending / f"{uuid.uuid4().hex}.pin"
        with self.shared():  # a deleter never sees the file before it is locked
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return PutSession(pin_file=path, _fd=fd)

    def live_pins(self, *, exclude: PutSession | None = None) -> set[str]:
        """Blobs pinned by running registrations (call under :meth:`exclusive`).

        Pin files of dead processes (their flock is free) are removed on the way.
        """
        pins: set[str] = set()
        if not self.pending.exists():
            return pins
        own = exclude.pin_file if exclude is not None else None
        for path in self.pending.glob("*.pin"):
            if path == own:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # its registration ended meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    with os.fdopen(os.dup(fd), "r") as f:
                        pins.update(line.strip() for line in f if line.strip())
                    continue
                path.unlink(missing_ok=True)  # the owner is gone
            finally:
                os.close(fd)
        return pins

    @staticmethod
    def part_in_use(part: Path) -> bool:
        """Whether a writer still holds the lock on a ``.part`` temp file."""
        try:
            fd = os.open(part, os.O_RDONLY)
        except FileNotFoundError:
            return True  # gone already: nothing to delete
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
