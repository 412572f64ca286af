"""A running job's log, live, for the other machines of a team workspace.

While a job runs, its runner appends what the job's log files (``prepare.log``, ``job.log``)
gained to the artifact store as numbered parts: ``<prefix>/jobs/<id>/log/<end>``, where ``<end>``
is the byte offset (16 digits) just after the part's last byte, so the parts sort in order and
the part holding any offset is the first one listed after it. A part is written at most every
``$MLWS_LOG_PART_S`` seconds (1) and as soon as new bytes appear after a quiet spell. When the
job has ended, the runner writes the last part and then ``end`` (the log's total size).

Another machine follows the log by listing the parts after its offset (one request) and reading
them: the log reads as one append-only text, whose offsets never move. The log files are the
job's: they are opened without following links (:mod:`jupyter_mlws.jobs.safe_files`).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_mlws.errors import UnsafePathError
from jupyter_mlws.jobs.logs import LOG_CHUNK_BYTES, decode_complete
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.safe_files import job_file_size, open_job_file

if TYPE_CHECKING:
    from jupyter_mlws.jobs.model import Job

ENV_INTERVAL = "MLWS_LOG_PART_S"
END = "end"
#: The most bytes one part holds (a job printing fast is published in several parts).
PART_MAX_BYTES = 8 << 20
#: How long after a job ended without an ``end`` (its runner died) readers stop waiting for it.
END_GRACE_S = 30.0
_TICK_S = 0.05
_PARTS_PER_READ = 64


class ObjectStore(Protocol):
    """What the artifact store's backend offers for plain objects."""

    def put_object(self, key: str, data: bytes) -> object: ...

    def list_folder(self, folder: str, after: str = "") -> list[tuple[str, int]]: ...

    def get_object(self, key: str, start: int = 0) -> bytes: ...


def folder(job_id: str) -> str:
    """Where a job's log parts are, below the artifact store's prefix."""
    return f"jobs/{job_id}/log"


def part_name(end: int) -> str:
    return f"{end:016d}"


def interval_s() -> float:
    try:
        return max(0.05, float(os.environ.get(ENV_INTERVAL, "1")))
    except ValueError:
        return 1.0


class LogPublisher:
    """Publishes the new bytes of a job's log files as parts, from a thread, until stopped."""

    def __init__(self, remote: ObjectStore, paths: JobPaths, job_id: str) -> None:
        self._remote = remote
        self._paths = paths
        self._folder = folder(job_id)
        self._files = (paths.prepare_log, paths.job_log)
        self._offsets = [0, 0]  # bytes of each file already published
        self.total = 0
        #: ``job.log`` is published once the job is recorded Running (:meth:`job_running`): a
        #: process started early prints before that, and no reader sees a line of a job whose
        #: status does not say it runs yet. ``prepare.log`` is published from the start.
        self._running = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def job_running(self) -> None:
        """The job is recorded Running: its own log may be published from now on."""
        self._running.set()

    def _sizes(self) -> list[int]:
        sizes = [job_file_size(p, self._paths.root) for p in self._files]
        return sizes if self._running.is_set() else [sizes[0], self._offsets[1]]

    def _read_new(self, sizes: list[int]) -> tuple[bytes, list[int]]:
        out = bytearray()
        offsets = list(self._offsets)
        for i, path in enumerate(self._files):
            want = min(sizes[i] - offsets[i], PART_MAX_BYTES - len(out))
            if want <= 0:
                continue
            try:
                with open_job_file(path, self._paths.root) as f:
                    f.seek(offsets[i])
                    data = f.read(want)
            except (FileNotFoundError, UnsafePathError):
                continue
            offsets[i] += len(data)
            out += data
        return bytes(out), offsets

    def flush(self) -> bool:
        """Publish what the files gained (one part); whether there was anything."""
        data, offsets = self._read_new(self._sizes())
        if not data:
            return False
        self._remote.put_object(f"{self._folder}/{part_name(self.total + len(data))}", data)
        self._offsets = offsets  # only once stored: a failed write is tried again
        self.total += len(data)
        return True

    def _loop(self) -> None:
        every = interval_s()
        last = 0.0
        while not self._stop.wait(_TICK_S):
            if time.monotonic() - last < every:
                continue
            if any(s > o for s, o in zip(self._sizes(), self._offsets)):
                with contextlib.suppress(Exception):  # the store is down: tried again later
                    self.flush()
                last = time.monotonic()

    def start(self) -> LogPublisher:
        self._thread = threading.Thread(target=self._loop, name="mlws-log-parts", daemon=True)
        self._thread.start()
        return self

    def finish(self) -> None:
        """Stop the thread, publish the rest, then write ``end``."""
        self._stop.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join()
        while self.flush():
            pass
        self._remote.put_object(f"{self._folder}/{END}",
                                json.dumps({"total": self.total}).encode())


@dataclass
class Chunk:
    data: bytes
    offset: int  # where ``data`` ends
    end: int | None  # the log's total size once the runner wrote ``end``


def read_parts(remote: ObjectStore, job_id: str, offset: int,
               limit: int = LOG_CHUNK_BYTES) -> Chunk:
    """The published log from ``offset`` (at most ``limit`` bytes, one listing)."""
    base = folder(job_id)
    listed = remote.list_folder(base, after=part_name(offset))
    out = bytearray()
    pos = offset
    end: int | None = None
    for n, (name, size) in enumerate(listed):
        if name == END:
            end = int(json.loads(remote.get_object(f"{base}/{END}")).get("total", 0))
            continue
        if not name.isdigit() or len(out) >= limit or n >= _PARTS_PER_READ:
            continue
        part_end = int(name)
        start = part_end - size
        if start > pos:
            break  # a part not listed yet (read on the next call)
        data = remote.get_object(f"{base}/{name}", start=pos - start) if pos < part_end else b""
        data = data[: limit - len(out)]
        out += data
        pos += len(data)
    return Chunk(bytes(out), pos, end)


def _gave_up(job: Job, tree_key: str) -> bool:
    """Whether ``end`` will not come: the runner published the job's files without it, or the
    job ended long ago (its runner died)."""
    if tree_key in job.spec:
        return True
    ended = job.ended_at
    return ended is not None and (datetime.now(timezone.utc) - ended).total_seconds() > END_GRACE_S


def read_log(remote: ObjectStore, job: Job, offset: int, limit: int, tree_key: str
             ) -> dict[str, Any]:
    """``{text, offset, done}`` of another machine's job, as ``ws.jobs.read_log`` answers."""
    chunk = read_parts(remote, job.id, max(0, offset), limit)
    finished = job.done and (chunk.offset >= chunk.end if chunk.end is not None
                             else _gave_up(job, tree_key))
    text, used = decode_complete(chunk.data, finished)
    new_offset = max(0, offset) + used
    return {"text": text, "offset": new_offset,
            "done": finished and new_offset >= max(0, offset) + len(chunk.data)}


def read_all(remote: ObjectStore, job_id: str) -> bytes:
    """The whole published log."""
    out = bytearray()
    while True:
        chunk = read_parts(remote, job_id, len(out))
        if not chunk.data:
            return bytes(out)
        out += chunk.data


def start(ws: Any, paths: JobPaths, job_id: str) -> LogPublisher | None:
    """For a runner: publish the job's log in parts while it runs, with a remote artifact store
    (None otherwise)."""
    remote = ws.artifacts.remote
    if remote is None or not hasattr(remote, "put_object"):
        return None
    return LogPublisher(remote, paths, job_id).start()


def finish(publisher: LogPublisher | None, paths: JobPaths) -> None:
    """For a runner, once the job ended: the last part and ``end``; a failure is noted in the
    runner's log (the job's files, published next, still hold the whole log)."""
    if publisher is None:
        return
    from jupyter_mlws.jobs.safe_files import open_log_for_append

    try:
        publisher.finish()
    except Exception as exc:  # noqa: BLE001 - the job's outcome stands
        with contextlib.suppress(OSError), open_log_for_append(paths.logs / "runner.log") as f:
            f.write(f"the end of the job's live log could not be published: {exc}\n".encode())
