"""Write methods of the SQL store are retried as a whole while the database is locked.

A write transaction cannot be retried from inside its ``with`` block (a context manager yields
once), so the retry sits one level up: :func:`retry_locked` runs the whole store method again,
each time in a fresh transaction, and turns what is left into typed errors at the store boundary.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from jupyter_mlws.errors import (
    DiskFullError,
    MetadataStoreUnavailableError,
    StoreBusyError,
    StoreError,
)
from jupyter_mlws.fileio import is_disk_full

#: How often a write runs before giving up on a locked database, and the first pause between.
ATTEMPTS = 8
FIRST_PAUSE_S = 0.05

P = ParamSpec("P")
R = TypeVar("R")


class RetryingStore(Protocol):
    """What :func:`retry_locked` needs of the store it decorates."""

    def _safe_uri(self) -> str: ...

    def _database_folder(self) -> str: ...

    def _on_locked(self, attempt: int) -> None: ...

    #: Seconds after the first attempt past which a locked write is not tried again (each
    #: attempt already waits SQLite's busy timeout).
    retry_budget_s: float


S = TypeVar("S")  # a store that is a RetryingStore (mixins make the bound impractical)


def is_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "database table is locked", or a PostgreSQL lock
    timeout or deadlock (both are worth running the transaction again)."""
    text = str(getattr(exc, "orig", exc)).lower()
    if "is locked" in text or "database is busy" in text:
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in ("40P01", "40001", "55P03")


def translate(store: RetryingStore, exc: DBAPIError) -> StoreError:
    """The typed error for a database failure that retrying did not cure."""
    if is_disk_full(exc):
        return DiskFullError(store._database_folder(), what="the metadata store")
    if is_locked(exc):
        return StoreBusyError(
            f"The store {store._safe_uri()} stayed locked by another writer through "
            "every retry.",
            hint="Another process holds a long write transaction (a stuck `sqlite3` shell or "
            "a killed tool?). Close it and try again.",
        )
    if is_unreachable(exc):
        return MetadataStoreUnavailableError(
            f"The metadata store's database server {store._safe_uri()} cannot be reached.",
            hint="Check that PostgreSQL is up and the URL's host and port are right; "
            "nothing was registered.")
    return StoreError(f"The store {store._safe_uri()} could not write: {exc.orig}")


def is_unreachable(exc: BaseException) -> bool:
    """A database server that refused or dropped the connection (not an SQL error)."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlstate", None)
    if code is not None:
        return str(code).startswith(("08", "57P"))
    text = str(orig).lower()
    return any(t in text for t in ("connection refused", "connection failed", "timeout expired",
                                   "could not connect", "server closed the connection",
                                   "connection is closed", "consuming input failed"))


def retry_locked(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run a write method again (in a new transaction) while the database is locked, up to
    :data:`ATTEMPTS` times within the store's ``retry_budget_s``; then raise a typed
    :class:`StoreError` (:class:`StoreBusyError`, :class:`DiskFullError`)."""

    @functools.wraps(fn)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        store: RetryingStore = self  # type: ignore[assignment]
        deadline = time.monotonic() + store.retry_budget_s
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn(self, *args, **kwargs)
            except OperationalError as exc:
                if is_locked(exc) and attempt < ATTEMPTS and time.monotonic() < deadline:
                    store._on_locked(attempt)
                    time.sleep(FIRST_PAUSE_S * attempt)
                    continue
                raise translate(store, exc) from None
            except DBAPIError as exc:
                if is_disk_full(exc):
                    raise translate(store, exc) from None
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def sqlite_folder(uri: str) -> str:
    """The folder of a SQLite database file named by ``uri`` (for messages)."""
    from sqlalchemy.engine import make_url

    try:
        database: Any = make_url(uri).database
    except Exception:
        return "<store>"
    return str(Path(database).resolve().parent) if database else "<memory>"


def reading(store: RetryingStore, sessions: Callable[[], Any]) -> Callable[[], Any]:
    """A read-session factory whose sessions turn "server unreachable" into
    :class:`MetadataStoreUnavailableError` (reads are not retried)."""

    @contextlib.contextmanager
    def open_session() -> Iterator[Any]:
        with sessions() as session:
            try:
                yield session
            except OperationalError as exc:
                if is_unreachable(exc):
                    raise translate(store, exc) from None
                raise

    return open_session

