"""Real processes against one SQLite workspace: races and kills."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from jupyter_mlws import Workspace

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
