"""gc of the S3 artifact store while another machine registers (two workspace folders on one
team workspace: PostgreSQL + SeaweedFS)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.artifacts import remote_gc
from tests.team.conftest import Team

pytestmark = pytest.mark.timeout(600)

GRACE_S = 10.0

#: Machine A: registers versions of "clf" until told to stop: fresh bytes, bytes of blobs that
#: were stored without a row (orphans gc may be deleting right then), and earlier bytes again.
REGISTRAR = r"""
import hashlib, json, os, random, sys, time
from pathlib import Path
from jupyter_mlws import Workspace

ws = Workspace.open(sys.argv[1])
stop, out, orphans = Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4])
src = Path(sys.argv[5])
rng = random.Random(7)
done, seen = [], []
i = 0
while not stop.exists() or i < 12:
    choice = i % 3
    if choice == 0 or not seen:
        data = os.urandom(2048) + str(i).encode()
    elif choice == 1:
        data = bytes.fromhex(orphans[i % len(orphans)])
    else:
        data = rng.choice(seen)
    seen.append(data)
    (src / "weights.bin").write_bytes(data)
    (src / "config.json").write_text(json.dumps({"i": i}))
    model = ws.models.create("clf", src)
    done.append({"version": model.version, "weights": data.hex(), "i": i})
    out.write_text(json.dumps(done))
    i += 1
ws.close()
"""


def _workspaces(team: Team, tmp_path: Path) -> tuple[Workspace, Workspace]:
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    return a, b


def test_gc_while_another_machine_registers_loses_nothing_referenced(
    team: Team, tmp_path: Path
) -> None:
    a, b = _workspaces(team, tmp_path)
    try:
        reused = [os.urandom(1500) for _ in range(6)]  # orphans A registers again later
        dropped = [os.urandom(1500) for _ in range(6)]  # orphans nobody uses
        orphan_shas = {a.artifacts.put_bytes(d) for d in reused + dropped}
        assert all(b.artifacts.remote.exists(s) for s in orphan_shas)  # type: ignore[union-attr]
        a.close()

        src = tmp_path / "src"
        src.mkdir()
        stop, out = tmp_path / "stop", tmp_path / "done.json"
        registrar = subprocess.Popen(
            [sys.executable, "-c", REGISTRAR, str(tmp_path / "A"), str(stop), str(out),
             json.dumps([d.hex() for d in reused]), str(src)],
            env={**os.environ}, stderr=subprocess.PIPE, text=True)
        removed: list[str] = []
        t0 = time.monotonic()
        try:  # B collects over and over while A registers, until the orphans are old enough
            while time.monotonic() - t0 < GRACE_S * 2.5:
                removed += b.gc(older_than_s=GRACE_S)
        finally:
            stop.touch()
            _, err = registrar.communicate(timeout=300)
        assert registrar.returncode == 0, err[-3000:]
        removed += b.gc(older_than_s=GRACE_S)

        done = json.loads(out.read_text())
        assert len(done) >= 12
        versions = {m.version for m in b.models.list("clf")}
        assert versions == {d["version"] for d in done}
        for entry in done:  # every version, downloaded on B with an empty cache
            got = b.models.download("clf", entry["version"], tmp_path / "got" / entry["version"])
            assert (got / "weights.bin").read_bytes() == bytes.fromhex(entry["weights"])
            assert json.loads((got / "config.json").read_text()) == {"i": entry["i"]}

        # the orphans nobody registered are gone; those A registered are stored
        for data in dropped:
            sha = hashlib.sha256(data).hexdigest()
            assert sha in removed
            assert not b.artifacts.remote.exists(sha)  # type: ignore[union-attr]
        used = {hashlib.sha256(bytes.fromhex(d["weights"])).hexdigest() for d in done}
        for sha in used:
            assert b.artifacts.remote.exists(sha)  # type: ignore[union-attr]
        assert not set(removed) & used - orphan_shas  # only orphans were ever candidates
        keys = team.object_keys()
        assert not [k for k in keys if "/gc/" in k and "/gc/done/" not in k]  # markers removed
        assert [k for k in keys if "/gc/done/" in k]  # each collection's record is kept
    finally:
        b.close()


def test_a_writer_that_found_a_blob_during_a_collection_stores_it_again(
    team: Team, tmp_path: Path
) -> None:
    """The race the markers close, played step by step: A finds an orphan stored (so would
    not upload it) while B's collection is about to delete it."""
    a, b = _workspaces(team, tmp_path)
    try:
        data = os.urandom(4096)
        sha = a.artifacts.put_bytes(data)  # an orphan: stored, no row
        backend = b.artifacts.remote
        assert backend is not None
        marker = "gc/test-collection"
        backend.put_object(marker, b"")  # B's collection runs
        result: list[str] = []
        writer = threading.Thread(target=lambda: result.append(a.artifacts.put_bytes(data)))
        writer.start()
        deadline = time.monotonic() + 60  # A touched the blob, saw the collection and waits
        while not any(k.endswith(remote_gc.touch_key(sha)) for k in team.object_keys()):
            assert time.monotonic() < deadline, "the writer never touched the blob"
            time.sleep(0.05)
        assert writer.is_alive()
        backend.delete(sha)  # the collection deletes it (it had listed it as old)
        backend.delete_object(marker)  # and ends
        writer.join(timeout=60)
        assert result == [sha]
        assert backend.exists(sha)  # A stored it again
        model = a.models.create("after-gc", _file(tmp_path, data))
        got = b.models.download("after-gc", model.version, tmp_path / "got")
        assert (got if got.is_file() else got / "weights.bin").read_bytes() == data

        # a real collection keeps it (referenced) and removes an unreferenced one once it is
        # older than the grace (the server's clock counts whole seconds)
        other = a.artifacts.put_bytes(os.urandom(100))
        removed: list[str] = []
        deadline = time.monotonic() + 60
        while other not in removed and time.monotonic() < deadline:
            removed += b.gc(older_than_s=0)
            time.sleep(0.2)
        assert other in removed and sha not in removed
        assert backend.exists(sha) and not backend.exists(other)
    finally:
        a.close()
        b.close()


def test_a_registration_slower_than_the_grace_keeps_its_blobs(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection that runs between a registration's upload and its commit, with a grace
    shorter than that gap, takes the blob; the registration confirms after its commit and stores
    it again, so the version is whole on another machine."""
    a, b = _workspaces(team, tmp_path)
    try:
        data = os.urandom(4096)
        sha = hashlib.sha256(data).hexdigest()
        uploaded, commit = threading.Event(), threading.Event()
        create_version = a.store.create_version

        def slow_commit(*args: object, **kw: object) -> object:
            uploaded.set()
            assert commit.wait(120)
            return create_version(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(a.store, "create_version", slow_commit)
        made: list[object] = []
        errors: list[BaseException] = []

        def register() -> None:
            try:
                made.append(a.models.create("slow", _file(tmp_path, data)))
            except BaseException as exc:  # (reported by the assertion below)
                errors.append(exc)

        writer = threading.Thread(target=register)
        writer.start()
        assert uploaded.wait(120)
        backend = b.artifacts.remote
        assert backend is not None and backend.exists(sha)
        removed: list[str] = []
        deadline = time.monotonic() + 60  # (the server's clock counts whole seconds)
        while sha not in removed and time.monotonic() < deadline:
            removed += b.gc(older_than_s=0)
            time.sleep(0.2)
        assert sha in removed and not backend.exists(sha)  # taken: no row refers to it yet
        commit.set()
        writer.join(timeout=120)
        assert not errors and len(made) == 1, errors
        assert backend.exists(sha)  # stored again after the commit
        got = b.models.download("slow", made[0].version, tmp_path / "got")  # type: ignore[attr-defined]
        assert (got if got.is_file() else got / "weights.bin").read_bytes() == data
        assert sha not in b.gc(older_than_s=0)  # referenced now: kept
    finally:
        a.close()
        b.close()


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    return path
