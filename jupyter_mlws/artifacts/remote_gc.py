"""Garbage collection of a remote artifact store that several machines write at once.

The local store keeps a blob alive with pins and a lock (:mod:`jupyter_mlws.artifacts.guard`);
machines cannot see each other's pins or locks. Across machines the rule is the foundation's:
a blob is deleted only when no committed row refers to it *and* it has not been written or
reused for a grace period (``older_than_s``), longer than any registration takes from storing
its blobs to committing its row. Two markers close the remaining race, between a writer that
finds a blob stored (so does not upload it) and a collector that is about to delete it:

- a writer that reuses a stored blob first *touches* it (writes ``touch/<sha>``), then looks
  for a running collector (``gc/<id>`` markers); one that uploads a blob has written it anew.
  If a collector runs, the writer waits until it is done and checks the blob again (and stores
  it again when it was deleted);
- a collector first writes its ``gc/<id>`` marker, reads the time from the server, then the
  committed references, then lists touches and blobs; it deletes only blobs that neither were
  written nor touched after that time minus the grace, and removes its marker at the end.

Each side writes its mark before it reads the other's, so one of them always sees the other:
either the collector sees the fresh write or touch and keeps the blob, or the writer sees the
collector and checks again after it. A collector refreshes its marker while it runs and stops
before its marker could look stale; a marker left by a collector that died is ignored once
stale, and removed by the next one.

The grace alone would not protect a registration that takes longer than it between storing a
blob and committing its row (a large upload, a slow machine, or a collector run with a short
``--older-than``). So each collector also leaves a record, ``gc/done/<start>-<id>``, when it
ends, and a registration *confirms* once its row is committed (:func:`confirm`, one listing of
``gc/`` when no collector ran): it waits for running collectors, and when one started after the
registration's first blob, checks that each of its blobs is still stored and stores again one
that was taken. A collector that starts after the commit reads the committed row, so it never
takes them.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator

from jupyter_mlws.artifacts.backends import BlobBackend
from jupyter_mlws.errors import ArtifactStoreUnavailableError

GC_PREFIX = "gc/"
DONE_PREFIX = "gc/done/"
TOUCH_PREFIX = "touch/"
MARKER_STALE_S = 300.0
REFRESH_S = 60.0
WAIT_POLL_S = 0.25
WAIT_MAX_S = 2 * MARKER_STALE_S
#: How long a collector's ``gc/done/`` record is kept (longer than any registration runs).
DONE_KEEP_S = 2 * 24 * 3600.0
#: A registration's start is its first check's time less this (covering the moment between
#: finding a blob stored and that check).
SINCE_MARGIN_S = 5.0


def touch_key(sha: str) -> str:
    return f"{TOUCH_PREFIX}{sha[:2]}/{sha[2:]}"


def _sha_of(rel: str, prefix: str) -> str | None:
    parts = rel[len(prefix):].split("/")
    sha = "".join(parts) if len(parts) == 2 else ""
    return sha if len(sha) == 64 else None


def _running(entries: list[tuple[str, float]], now: float) -> bool:
    """Whether a collector's marker among ``gc/`` entries is fresh (a live one refreshes it)."""
    return any(not rel.startswith(DONE_PREFIX) and now - mtime < MARKER_STALE_S
               for rel, mtime in entries)


def collector_running(backend: BlobBackend) -> bool:
    """Whether a collector runs."""
    return _running(*backend.list_objects(GC_PREFIX))


def _wait_collectors(backend: BlobBackend, deadline: float) -> None:
    while collector_running(backend):
        if time.monotonic() > deadline:
            raise ArtifactStoreUnavailableError(
                f"A garbage collection of the artifact store {backend.location} has run "
                f"for more than {WAIT_MAX_S:.0f} s; the registration waited for it.",
                hint="Try again when `mlws workspace gc` has finished.")
        time.sleep(WAIT_POLL_S)


def settle(backend: BlobBackend, sha: str, *, reused: bool) -> tuple[bool, float]:
    """After a writer found (``reused``) or uploaded a blob: touch it when reused, wait for a
    running collector. Whether the blob is still stored (False: store it again), and the start
    to give :func:`confirm` (the store's time of this check, less :data:`SINCE_MARGIN_S`)."""
    deadline = time.monotonic() + WAIT_MAX_S
    since: float | None = None
    while True:
        if reused:
            backend.put_object(touch_key(sha), b"")
        entries, now = backend.list_objects(GC_PREFIX)
        since = now - SINCE_MARGIN_S if since is None else since
        if not _running(entries, now):
            return True, since
        _wait_collectors(backend, deadline)
        if not backend.exists(sha):
            return False, since
        reused = True  # touch it again: the collector may have removed the touch


def confirm(backend: BlobBackend, since: float, shas: set[str],
            store_again: Callable[[str], bool]) -> list[str]:
    """After a registration committed its row (its first blob settled at ``since``, store
    time): wait for running collectors; if one started since, check each of ``shas`` and store
    a missing one again (``store_again(sha)``, False when it cannot). The blobs stored again;
    :class:`ArtifactStoreUnavailableError` naming those that could not be."""
    entries, now = backend.list_objects(GC_PREFIX)
    if _running(entries, now):
        _wait_collectors(backend, time.monotonic() + WAIT_MAX_S)
        entries, now = backend.list_objects(GC_PREFIX)
    if not any(rel.startswith(DONE_PREFIX) and _started(rel) >= since for rel, _ in entries):
        return []
    again: list[str] = []
    lost: list[str] = []
    for sha in sorted(shas):
        if backend.exists(sha):
            continue
        (again if store_again(sha) else lost).append(sha)
    if lost:
        raise ArtifactStoreUnavailableError(
            f"A garbage collection of {backend.location} ran during this registration and "
            f"removed {len(lost)} of its blobs before the registration was committed, and no "
            f"local copy is left to store them again (first: {lost[0][:12]}).",
            hint="Register it again from its source files; the version just recorded refers to "
                 "missing content.")
    return again


def _started(rel: str) -> float:
    """The start time in a ``gc/done/`` record's name (0 when it is not one)."""
    head = rel[len(DONE_PREFIX):].split("-", 1)[0]
    return int(head) / 1e9 if head.isdigit() else 0.0


class _Run:
    """One collection: its marker, refreshed while it runs."""

    def __init__(self, backend: BlobBackend) -> None:
        self.backend = backend
        self.key = f"{GC_PREFIX}{uuid.uuid4().hex}"
        self.started = backend.put_object(self.key, b"")  # the server's clock
        self._refreshed = time.monotonic()

    def refresh(self) -> None:
        """Keep the marker fresh; stop before it could look stale to a writer."""
        age = time.monotonic() - self._refreshed
        if age >= MARKER_STALE_S / 2:
            raise ArtifactStoreUnavailableError(
                f"The garbage collection of {self.backend.location} was held up for {age:.0f} s "
                "between two steps; it stopped (nothing unsafe was deleted).",
                hint="Run `mlws workspace gc` again.")
        if age >= REFRESH_S:
            self.backend.put_object(self.key, b"")
            self._refreshed = time.monotonic()


@contextlib.contextmanager
def _marked(backend: BlobBackend) -> Iterator[_Run]:
    run = _Run(backend)
    try:
        yield run
    finally:
        with contextlib.suppress(ArtifactStoreUnavailableError):
            # the record first: a registration that no longer sees the marker sees it
            backend.put_object(f"{DONE_PREFIX}{int(run.started * 1e9):020d}-{run.key[3:]}", b"")
            backend.delete_object(run.key)


def collect(backend: BlobBackend, keep: Callable[[], set[str]], *,
            older_than_s: float) -> list[str]:
    """Delete the remote blobs that ``keep()`` (read after the marker is written) does not
    name and that were neither written nor touched within ``older_than_s`` of the start."""
    removed: list[str] = []
    with _marked(backend) as run:
        cutoff = run.started - older_than_s
        keep_set = keep()
        run.refresh()
        touches, _ = backend.list_objects(TOUCH_PREFIX)
        touched: dict[str, float] = {}
        for rel, mtime in touches:
            sha = _sha_of(rel, TOUCH_PREFIX)
            if sha is not None:
                touched[sha] = max(mtime, touched.get(sha, 0.0))
        blobs, _ = backend.list_objects("blobs/")
        for rel, mtime in blobs:
            sha = _sha_of(rel, "blobs/")
            if sha is None or sha in keep_set or max(mtime, touched.get(sha, 0.0)) >= cutoff:
                continue
            run.refresh()
            backend.delete(sha)
            removed.append(sha)
        for sha, mtime in touched.items():  # touches older than the grace mean nothing now
            if mtime < cutoff:
                run.refresh()
                backend.delete_object(touch_key(sha))
        abort = getattr(backend, "abort_uploads_before", None)
        if abort is not None:  # S3: parts of uploads killed longer ago than the grace
            run.refresh()
            abort(cutoff)
        entries, now = backend.list_objects(GC_PREFIX)
        for rel, mtime in entries:  # markers left by collectors that died; old records
            done = rel.startswith(DONE_PREFIX)
            if rel != run.key and now - mtime >= (DONE_KEEP_S if done else 2 * MARKER_STALE_S):
                backend.delete_object(rel)
    return removed
