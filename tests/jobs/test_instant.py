"""Instant jobs (issue 15): the FIFO queue of a compute's slots, the snapshot stat cache, the
parameters cell read without papermill. Real processes, real locks, real papermill as oracle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.artifacts import stat_cache
from jupyter_mlws.jobs import queue
from jupyter_mlws.jobs.notebooks import notebook_parameters
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.runner import is_locked
from tests.helpers import make_notebook

REPO = Path(__file__).resolve().parents[2]

# a runner's queue part alone: wait for the turn, take a slot, say so, give it back
WAITER = """
import os, sys
from pathlib import Path
from jupyter_mlws.jobs import queue
slot_dir, name, log = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ticket, held = queue.adopt_ticket(os.environ, slot_dir, name)
assert queue.wait_turn(ticket, lambda: False)
slot = queue.take_slot(slot_dir, int(sys.argv[4]), lambda: False)
with open(log, "a") as f:  # (before leaving: the next one is not the head before that)
    f.write(name + "\\n")
queue.leave(ticket, held)
slot.close()
"""


def wait_for(pred: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _spawn_waiter(slot_dir: Path, name: str, log: Path, slots: int,
                  ticket: tuple[Path, object] | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    fds: tuple[int, ...] = ()
    if ticket is not None:
        path, f = ticket
        fds = (f.fileno(),)  # type: ignore[attr-defined]
        env[queue.TICKET_PATH_VAR] = str(path)
        env[queue.TICKET_FD_VAR] = str(fds[0])
    return subprocess.Popen([sys.executable, "-c", WAITER, str(slot_dir), name, str(log),
                             str(slots)], env=env, pass_fds=fds)


@pytest.mark.parametrize("slots", [1, 2])
def test_places_are_kept_whatever_order_the_runners_start_in(tmp_path: Path, slots: int) -> None:
    slot_dir, log = tmp_path / "slots", tmp_path / "order.log"
    names = [f"job{i}" for i in range(8)]
    tickets = [queue.issue_ticket(slot_dir, n) for n in names]  # submission order
    procs = []
    for name, ticket in reversed(list(zip(names, tickets))):  # runners start last-first
        procs.append(_spawn_waiter(slot_dir, name, log, slots, ticket))
        ticket[1].close()  # the runner holds the ticket's lock now
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert log.read_text().split() == names
    assert not [n for n in os.listdir(queue.queue_dir(slot_dir)) if not n.startswith(".")]


def test_a_dead_runners_place_is_skipped(tmp_path: Path) -> None:
    slot_dir, log = tmp_path / "slots", tmp_path / "order.log"
    tickets = [queue.issue_ticket(slot_dir, f"job{i}") for i in range(4)]
    tickets[1][1].close()  # its runner never took it over (died): the ticket stays, unlocked
    procs = [_spawn_waiter(slot_dir, f"job{i}", log, 1, tickets[i]) for i in (3, 2, 0)]
    for i in (3, 2, 0):
        tickets[i][1].close()
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert log.read_text().split() == ["job0", "job2", "job3"]
    assert not tickets[1][0].exists()  # the stale ticket was cleaned up by its successor


def test_a_runner_without_a_handed_ticket_queues_at_the_end(tmp_path: Path) -> None:
    slot_dir, log = tmp_path / "slots", tmp_path / "order.log"
    first = queue.issue_ticket(slot_dir, "first")
    late = _spawn_waiter(slot_dir, "late", log, 1, None)  # takes a ticket of its own
    wait_for(lambda: len(os.listdir(queue.queue_dir(slot_dir))) >= 2)
    early = _spawn_waiter(slot_dir, "first", log, 1, first)
    first[1].close()
    assert early.wait(timeout=120) == 0 and late.wait(timeout=120) == 0
    assert log.read_text().split() == ["first", "late"]


def _slot_taken_at(ws: Workspace, job_id: str) -> int:
    text = (ws.jobs.paths(job_id).logs / "runner.log").read_text()
    return int(next(line.rsplit(" ", 1)[1] for line in text.splitlines()
                    if "took a slot" in line))


@pytest.mark.parametrize("slots", [1, 2])
def test_queued_jobs_start_in_submission_order(jws: Workspace, tmp_path: Path,
                                               slots: int) -> None:
    jws.computes.create("fifo", type="local", max_concurrent_jobs=slots)
    gate = tmp_path / "gate"
    blockers = [jws.jobs.submit_command(f"while [ ! -e {gate} ]; do sleep 0.05; done",
                                        compute="fifo") for _ in range(slots)]
    ids = [jws.jobs.submit_command(f"echo {i}", compute="fifo").id for i in range(8)]
    wait_for(lambda: all(is_locked(JobPaths(jws.jobs.paths(i).root).runner_lock) or
                         jws.jobs.get(i).done for i in ids))
    gate.touch()
    finished = [jws.jobs.wait(i, timeout=300) for i in [b.id for b in blockers] + ids]
    assert all(j.status == "Completed" for j in finished), [j.status for j in finished]
    taken = [_slot_taken_at(jws, i) for i in ids]
    assert taken == sorted(taken), "jobs took their slots out of submission order"


# --- the snapshot's stat cache ------------------------------------------------------------------

@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust entries at once (files made by a test are younger than the racy-clean margin)."""
    monkeypatch.setattr(stat_cache, "RACY_NS", -10**18)


def test_an_unchanged_file_is_not_read_again(ws: Workspace, tmp_path: Path, trusting) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "a.py").write_text("print('a')\n")
    cache = stat_cache.StatCache(tmp_path / "cache.json")
    first = ws.artifacts.snapshot(code, tmp_path / "out1", stat_cache=cache)
    # the cache is what is used: point the entry at another stored blob, with the same stat
    other = ws.artifacts.put_bytes(b"print('b')\n")
    entry = cache._entries[str((code / "a.py").resolve())]
    entry[-1] = other
    again = stat_cache.StatCache(tmp_path / "cache.json")
    again._entries = cache._entries
    second = ws.artifacts.snapshot(code, tmp_path / "out2", stat_cache=again)
    assert second.sha256 != first.sha256
    assert (tmp_path / "out2" / "a.py").read_text() == "print('b')\n"


def test_a_changed_file_of_the_same_size_is_hashed_again(ws: Workspace, tmp_path: Path,
                                                         trusting) -> None:
    code = tmp_path / "code"
    code.mkdir()
    f = code / "a.py"
    f.write_text("x = 1\n")
    st = f.stat()
    cache_file = tmp_path / "cache.json"
    first = ws.artifacts.snapshot(code, tmp_path / "out1", stat_cache=stat_cache.StatCache(
        cache_file))
    f.write_text("x = 2\n")  # same size, same inode
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # even the old mtime put back
    assert f.stat().st_size == st.st_size and f.stat().st_ino == st.st_ino
    second = ws.artifacts.snapshot(code, tmp_path / "out2", stat_cache=stat_cache.StatCache(
        cache_file))
    assert second.sha256 != first.sha256
    assert (tmp_path / "out2" / "a.py").read_text() == "x = 2\n"
    # replaced by another file (new inode), same size and times
    repl = code / "a.tmp"
    repl.write_text("x = 3\n")
    os.utime(repl, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(repl, f)
    third = ws.artifacts.snapshot(code, tmp_path / "out3", stat_cache=stat_cache.StatCache(
        cache_file))
    assert (tmp_path / "out3" / "a.py").read_text() == "x = 3\n"
    assert third.sha256 not in (first.sha256, second.sha256)


def test_a_fresh_entry_is_not_trusted(ws: Workspace, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "a.py").write_text("y = 1\n")
    cache = stat_cache.StatCache(tmp_path / "cache.json")
    ws.artifacts.snapshot(code, tmp_path / "out1", stat_cache=cache)
    full = (code / "a.py").resolve()
    assert cache.lookup(full, full.stat()) is None  # changed within the racy margin


def test_submitted_jobs_keep_a_stat_cache(jws: Workspace, notebook) -> None:
    nb = notebook("print(1)", parameters="msg = None")
    job = jws.jobs.submit_notebook(nb, {"msg": "hi"})
    data = json.loads((jws.path / "snapshot-stat-cache.json").read_text())
    assert str(nb.resolve()) in data["entries"]
    assert jws.jobs.wait(job.id, timeout=300).status == "Completed"


# --- the parameters cell, read without papermill ---------------------------------------------

CELLS = [
    "msg = None",
    'alpha = 0.5  # learning rate\nepochs: int = 3\nname = "x"\nflag = True',
    "layers = [8, 16]\nopts = {'a': 1}",
    "n = 1  # type: int the count",
    "x: 'float' = 1",
    "s = 'a#b'",
    "a = b = 1",
    "cfg = dict(a=1)",
    "%matplotlib inline\nk = 2",
    "v = [1,\n     2]",
    "import os\nw = 1",
    "t = 1;",
    "",
]


@pytest.mark.parametrize("cell", CELLS)
def test_parameters_read_as_papermill_reads_them(tmp_path: Path, cell: str) -> None:
    import papermill

    nb = make_notebook(tmp_path / "p.ipynb", "print(1)", parameters=cell)
    assert notebook_parameters(nb) == dict(papermill.inspect_notebook(str(nb)))


def test_a_notebook_without_a_parameters_cell_has_none(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "p.ipynb", "print(1)")
    assert notebook_parameters(nb) == {}


@pytest.mark.parametrize("cell", CELLS[:5])
def test_plain_parameters_cells_need_no_papermill(cell: str) -> None:
    from jupyter_mlws.jobs.notebooks import parameters_of

    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]},
                     "source": cell}], "metadata": {}}
    assert parameters_of(nb) is not None


def test_a_notebook_nbformat_repairs_is_accepted_and_a_broken_one_refused(tmp_path: Path) -> None:
    """Notebooks written by other tools often lack the cell ids nbformat 4.5 asks for; nbformat
    reads them (adding ids), so the fast schema check must not refuse them."""
    from jupyter_mlws.errors import SpecError
    from jupyter_mlws.jobs.notebooks import read_notebook

    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": "x = 1"}
    nb = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "no-ids.ipynb"
    path.write_text(json.dumps(nb))
    assert read_notebook(path)["cells"][0]["source"] == "x = 1"
    broken = tmp_path / "broken.ipynb"
    broken.write_text(json.dumps({**nb, "cells": [{**cell, "cell_type": "spreadsheet"}]}))
    with pytest.raises(SpecError, match="not a valid notebook"):
        read_notebook(broken)
