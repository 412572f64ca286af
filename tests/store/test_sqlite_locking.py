"""SQLite only: a write that finds the database locked by another connection is run again as a
whole, and a lock held through every retry is a typed error (issue 9, defect 13)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_mlws.errors import StoreBusyError, StoreError
from jupyter_mlws.store.base import NewVersion
from jupyter_mlws.store.retrying import ATTEMPTS
from jupyter_mlws.store.sql import SqlStore

HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")  # the write lock, held until told to let go
conn.execute("INSERT INTO workspace_meta(key, value) VALUES ('held', 'by another process')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
print("released", flush=True)
sys.stdin.readline()
"""


class LockHolder:
    """Another process with a write transaction open on the database file."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._line() == "locked"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("release\n")
        self.proc.stdin.flush()
        assert self._line() == "released"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


class ObservedStore(SqlStore):
    """A real store that records each locked attempt and may act on it (the test's hook)."""

    def __init__(self, uri: str, release_after: int | None = None,
                 holder: LockHolder | None = None, budget_s: float = 600) -> None:
        super().__init__(uri, busy_timeout_ms=50)
        self.retry_budget_s = budget_s  # every attempt, however loaded the machine
        self.locked: list[int] = []
        self.release_after, self.holder = release_after, holder

    def _on_locked(self, attempt: int) -> None:
        self.locked.append(attempt)
        if attempt == self.release_after and self.holder is not None:
            self.holder.release()


def nv(content: str) -> NewVersion:
    sha = hashlib.sha256(content.encode()).hexdigest()
    return NewVersion(kind="model", name="m", version=None, content_hash=sha, spec={})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "mlws.db"
    SqlStore(f"sqlite:///{path}", lock_dir=tmp_path).close()  # created and migrated
    return path


@pytest.fixture
def holder(db: Path) -> Iterator[LockHolder]:
    h = LockHolder(db)
    yield h
    h.close()


def test_a_locked_write_is_retried_and_succeeds_once_the_lock_goes(
    db: Path, holder: LockHolder
) -> None:
    store = ObservedStore(f"sqlite:///{db}", release_after=2, holder=holder)
    entity, created = store.create_version(nv("a"))
    assert (entity.version, created) == ("1", True)
    assert store.locked == [1, 2]  # two attempts found the lock, the third wrote
    store.close()


def test_a_lock_held_through_every_retry_is_a_typed_error(db: Path, holder: LockHolder) -> None:
    store = ObservedStore(f"sqlite:///{db}")
    with pytest.raises(StoreBusyError, match="locked by another writer") as err:
        store.create_version(nv("a"))
    assert isinstance(err.value, StoreError) and err.value.http_status == 503
    assert store.locked == list(range(1, ATTEMPTS))
    with pytest.raises(StoreBusyError):  # job writes too
        store.create_job({"id": "j", "type": "command", "status": "Queued", "compute": "local",
                          "spec": {}})
    holder.release()
    assert store.create_version(nv("b"))[0].version == "1"  # nothing half-written before
    assert store.get_meta("held") is None
    store.close()


def test_no_retry_past_the_budget(db: Path, holder: LockHolder) -> None:
    """Each attempt already waited SQLite's busy timeout: past the budget it is an error."""
    store = ObservedStore(f"sqlite:///{db}", budget_s=0)
    with pytest.raises(StoreBusyError):
        store.set_meta("k", "v")
    assert store.locked == []
    store.close()
