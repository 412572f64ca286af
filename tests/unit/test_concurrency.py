"""Real processes against one SQLite workspace: races and kills."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_mlws import Workspace
from jupyter_mlws.assets.base import Asset
from jupyter_mlws.errors import VersionConflictError
from jupyter_mlws.store.base import NewVersion
from jupyter_mlws.store.sql import SqlStore

REGISTER_ONE = """
import sys
from jupyter_mlws import Workspace
ws = Workspace.open(sys.argv[1])
sys.stdin.readline()  # wait for the start signal so all processes race
m = ws.models.create("racer", sys.argv[2])
print(m.version)
"""

REGISTER_FOREVER = """
import sys
from pathlib import Path
from jupyter_mlws import Workspace
ws = Workspace.open(sys.argv[1])
src = Path(sys.argv[2])
i = 0
print("ready", flush=True)
while True:
    i += 1
    (src / "counter.txt").write_text(str(i))
    ws.models.create("victim", src)
"""


def test_sixteen_processes_get_sixteen_contiguous_versions(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "p")
    ws.close()
    procs = []
    for i in range(16):
        f = tmp_path / f"w{i}.bin"
        f.write_bytes(f"weights {i}".encode())
        procs.append(subprocess.Popen(
            [sys.executable, "-c", REGISTER_ONE, str(tmp_path / "p"), str(f)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    time.sleep(1.0)  # let every process open the workspace
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=120) for p in procs]
    errors = [err for (_out, err), p in zip(results, procs) if p.returncode != 0]
    assert errors == []
    versions = sorted(int(out.strip()) for out, _ in results)
    assert versions == list(range(1, 17))
    ws = Workspace.open(tmp_path / "p")
    stored = {m.version: m.sha256 for m in ws.models.list("racer")}
    assert len(stored) == 16 and len(set(stored.values())) == 16


def test_sigkill_mid_registration_leaves_a_consistent_store(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "p")
    ws.close()
    src = tmp_path / "model"
    src.mkdir()
    for i in range(40):  # enough files that a kill often lands mid-copy
        (src / f"part{i}.bin").write_bytes(os.urandom(64 * 1024))
    for delay in (0.3, 0.55, 0.8, 1.1):
        proc = subprocess.Popen(
            [sys.executable, "-c", REGISTER_FOREVER, str(tmp_path / "p"), str(src)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL

    db = sqlite3.connect(tmp_path / "p" / ".mlws" / "mlws.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    ws = Workspace.open(tmp_path / "p")
    versions = sorted(int(m.version) for m in ws.models.list("victim"))
    assert versions == list(range(1, len(versions) + 1))  # contiguous: no gap, no duplicate
    assert len(versions) >= 1
    for m in ws.models.list("victim"):  # every committed version has all its bytes
        out = ws.models.download("victim", m.version, tmp_path / "check" / m.version)
        assert len(list(out.iterdir())) == 41
    # and the workspace keeps working: the next registration gets the next version
    nxt = ws.models.create("victim", src)
    assert int(nxt.version) == versions[-1] + 1
    # what a killed registration left behind is collectable garbage, never referenced
    removed = ws.gc(older_than_s=0)
    for m in ws.models.list("victim"):
        assert m.sha256 not in removed


# --- blobs shared by concurrent registrations, gc during a registration -----------------------

class PausingStore(SqlStore):
    """A real store whose ``create_version`` of the names in ``pause`` stops (after the blobs
    are stored) until the test lets it go: the hook that makes each interleaving certain."""

    def __init__(self, uri: str, *pause: str) -> None:
        super().__init__(uri)
        self.reached = {name: threading.Event() for name in pause}
        self.go = {name: threading.Event() for name in pause}

    def create_version(self, new: NewVersion) -> tuple[Asset, bool]:
        if new.name in self.reached:
            self.reached[new.name].set()
            assert self.go[new.name].wait(120), "the test never let the registration go"
        return super().create_version(new)


class Registration(threading.Thread):
    """One ``ws.models.create`` in a thread, on a workspace whose store pauses it."""

    def __init__(self, ws: Workspace, name: str, path: Path, **kw: Any) -> None:
        super().__init__(daemon=True)
        self.store = PausingStore(ws.store.uri, name)  # type: ignore[attr-defined]
        self.ws = Workspace(ws.path, ws.settings, self.store)
        self.name_, self.path, self.kw = name, path, kw
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.ws.models.create(self.name_, self.path, **self.kw)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc

    def wait_paused(self) -> None:
        assert self.store.reached[self.name_].wait(120), self.error

    def finish(self) -> None:
        self.store.go[self.name_].set()
        self.join(120)
        assert not self.is_alive()
        self.ws.close()


def mlws(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``mlws`` CLI in a real process."""
    proc = subprocess.run([sys.executable, "-m", "jupyter_mlws.cli", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def _big_folder(tmp_path: Path, first: bytes) -> Path:
    """A folder whose first file has the bytes ``first``, then a large one."""
    big = tmp_path / "big"
    big.mkdir()
    (big / "a_first.bin").write_bytes(first)
    (big / "b_large.bin").write_bytes(os.urandom(16 << 20))
    return big


def test_failed_registration_keeps_a_blob_a_concurrent_one_committed(
    ws: Workspace, tmp_path: Path
) -> None:
    """Issue 9, defect 1: the big registration wrote the blob, the small one (another process)
    found it present and committed; the big one then fails on a version conflict."""
    small_bytes = os.urandom(1 << 20)
    (tmp_path / "other.bin").write_bytes(b"what big:1 already is")
    ws.models.create("big", tmp_path / "other.bin", version="1")
    big = _big_folder(tmp_path, small_bytes)
    small = tmp_path / "small.bin"
    small.write_bytes(small_bytes)

    first = Registration(ws, "big", big, version="1")  # will conflict
    first.start()
    first.wait_paused()  # every blob of the folder is stored, the small file's among them
    mlws("model", "create", "-n", "small", "-p", str(small), "-w", str(ws.path))
    first.finish()
    assert isinstance(first.error, VersionConflictError)

    out = ws.models.download("small", dest=tmp_path / "dl")
    assert out.read_bytes() == small_bytes
    big_blob = ws.artifacts.blob_path(hashlib.sha256((big / "b_large.bin").read_bytes())
                                      .hexdigest())
    assert not big_blob.exists()  # what only the failed registration used is taken back


def test_rollback_keeps_a_blob_a_running_registration_pinned(
    ws: Workspace, tmp_path: Path
) -> None:
    """The small registration found the blob present and has not committed yet when the big
    one fails: its pin keeps the blob."""
    small_bytes = os.urandom(1 << 20)
    (tmp_path / "other.bin").write_bytes(b"what big:1 already is")
    ws.models.create("big", tmp_path / "other.bin", version="1")
    big = _big_folder(tmp_path, small_bytes)
    small = tmp_path / "small.bin"
    small.write_bytes(small_bytes)

    first = Registration(ws, "big", big, version="1")
    first.start()
    first.wait_paused()
    second = Registration(ws, "small", small)
    second.start()
    second.wait_paused()  # found the blob present, pinned it, not committed
    first.finish()
    assert isinstance(first.error, VersionConflictError)
    second.finish()
    assert second.error is None
    assert ws.models.download("small", dest=tmp_path / "dl").read_bytes() == small_bytes


def test_gc_older_than_zero_during_a_registration_keeps_its_blobs(
    ws: Workspace, tmp_path: Path
) -> None:
    """Issue 9, defect 2: `mlws workspace gc --older-than 0` (another process) runs after the
    registration stored its blobs and before it committed the version."""
    big = _big_folder(tmp_path, os.urandom(4096))
    reg = Registration(ws, "m", big)
    reg.start()
    reg.wait_paused()
    mlws("workspace", "gc", "--older-than", "0", "-w", str(ws.path))
    reg.finish()
    assert reg.error is None
    out = ws.models.download("m", dest=tmp_path / "dl")
    assert (out / "b_large.bin").read_bytes() == (big / "b_large.bin").read_bytes()
    # once committed, gc keeps it for its version; an orphan still goes
    orphan = ws.artifacts.put_bytes(b"an orphan")
    removed = mlws("workspace", "gc", "--older-than", "0", "-w", str(ws.path)).stdout
    assert "Removed 1 " in removed and not ws.artifacts.has(orphan)
    assert ws.models.download("m", dest=tmp_path / "dl2").is_dir()


def test_default_gc_keeps_an_old_orphan_blob_a_registration_reuses(
    ws: Workspace, tmp_path: Path
) -> None:
    """Issue 9, defect 2: an orphan blob older than gc's grace is reused by a registration;
    `mlws workspace gc` (default grace) runs before the registration commits."""
    data = os.urandom(1 << 16)
    sha = ws.artifacts.put_bytes(data)  # left behind by a killed registration, long ago
    old = time.time() - 7200
    os.utime(ws.artifacts.blob_path(sha), (old, old))
    src = tmp_path / "weights.bin"
    src.write_bytes(data)
    reg = Registration(ws, "reuser", src)
    reg.start()
    reg.wait_paused()
    mlws("workspace", "gc", "-w", str(ws.path))
    reg.finish()
    assert reg.error is None
    assert ws.models.download("reuser", dest=tmp_path / "dl").read_bytes() == data


def test_gc_skips_pins_of_a_live_process_and_drops_those_of_a_killed_one(
    ws: Workspace, tmp_path: Path
) -> None:
    """Pins live as long as their process: a SIGKILLed registration's pins stop protecting."""
    sha = ws.artifacts.put_bytes(b"pinned by another process")
    holder = subprocess.Popen(
        [sys.executable, "-c", PIN_AND_HOLD, str(ws.artifacts.root), sha],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "pinned"
    assert ws.gc(older_than_s=0) == []
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert ws.gc(older_than_s=0) == [sha]
    assert not list((ws.artifacts.root / "pending").glob("*.pin"))


PIN_AND_HOLD = """
import sys, time
from pathlib import Path
from jupyter_mlws.artifacts import ArtifactStore
store = ArtifactStore(Path(sys.argv[1]))
with store.session() as s:
    with store.guard.shared():
        s.pin(sys.argv[2])
    print("pinned", flush=True)
    time.sleep(600)
"""
