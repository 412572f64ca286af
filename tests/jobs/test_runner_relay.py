"""The runner relay (issue 15): a runner that ended its job runs the next queued job of its
compute, handed over with its locks; only interchangeable runners relay; a relay that dies
fails its own job only. Real runners, real locks, real sockets."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.jobs import relay
from jupyter_mlws.jobs.runner import is_locked, try_lock
from tests.jobs.test_instant import wait_for


def _hold(jws: Workspace, gate: Path, compute: str) -> str:
    """A job that keeps the compute's one slot until ``gate`` exists."""
    return jws.jobs.submit_command(f"while [ ! -e {gate} ]; do sleep 0.05; done",
                                   compute=compute).id


def _runner_log(jws: Workspace, job_id: str) -> str:
    return (jws.jobs.paths(job_id).logs / "runner.log").read_text()


def _queued(jws: Workspace, ids: list[str]) -> None:
    """Wait until every job's runner holds its lock (its place in the queue taken)."""
    wait_for(lambda: all(is_locked(jws.jobs.paths(i).runner_lock) for i in ids))


def test_queued_jobs_run_in_the_runner_that_ended_before_them(jws: Workspace,
                                                               tmp_path: Path) -> None:
    jws.computes.create("one", type="local", max_concurrent_jobs=1)
    gate = tmp_path / "gate"
    first = _hold(jws, gate, "one")
    ids = [jws.jobs.submit_command(f"echo job-{i}", compute="one").id for i in range(5)]
    _queued(jws, ids)
    gate.touch()
    done = [jws.jobs.wait(i, timeout=120) for i in [first, *ids]]
    assert [j.status for j in done] == ["Completed"] * 6
    assert {j.runner_pid for j in done} == {done[0].runner_pid}, "each job loaded a runner"
    for n, job_id in enumerate(ids):  # each job's own output and log, nothing of the others'
        out = jws.jobs.logs(job_id)
        assert f"job-{n}" in out and all(f"job-{m}" not in out for m in range(5) if m != n)
        text = _runner_log(jws, job_id)
        assert f"handed to the loaded runner {done[0].runner_pid}" in text
        assert text.count("runs this job (handed over") == 1
    assert "handed" not in _runner_log(jws, first)


def test_a_job_submitted_after_the_last_one_ended_gets_its_runner(
        jws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner that ended its job offers itself a while, queue or not: the next submission
    (a sweep's next trial, the next %submit) takes the loaded runner."""
    monkeypatch.setenv("MLWS_RUNNER_RELAY_WAIT_S", "60")  # (a loaded machine starts slowly)
    jws.computes.create("one", type="local", max_concurrent_jobs=1)
    first = jws.jobs.wait(jws.jobs.submit_command("echo one", compute="one").id, timeout=120)
    second = jws.jobs.wait(jws.jobs.submit_command("echo two", compute="one").id, timeout=120)
    assert (first.status, second.status) == ("Completed", "Completed")
    assert second.runner_pid == first.runner_pid
    assert "two" in jws.jobs.logs(second.id) and "one" not in jws.jobs.logs(second.id)


def test_runners_of_different_environments_never_relay(jws: Workspace, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A job runs with the environment it was submitted with, so a runner started with other
    variables does not run it."""
    jws.computes.create("one", type="local", max_concurrent_jobs=1)
    gate = tmp_path / "gate"
    first = _hold(jws, gate, "one")
    ids = []
    for colour in ["red", "blue", "blue", "red"]:
        monkeypatch.setenv("RELAY_COLOUR", colour)
        ids.append(jws.jobs.submit_command("echo colour=$RELAY_COLOUR", compute="one").id)
    _queued(jws, ids)
    gate.touch()
    done = [jws.jobs.wait(i, timeout=120) for i in ids]
    assert [j.status for j in done] == ["Completed"] * 4
    for colour, job_id in zip(["red", "blue", "blue", "red"], ids):
        assert f"colour={colour}" in jws.jobs.logs(job_id)
    pids = [j.runner_pid for j in done]
    assert pids[1] == pids[2], "two runners of one environment did not relay"
    assert not {pids[0], pids[3]} & {pids[1], pids[2]}, "runners of other environments relayed"
    assert jws.jobs.get(first).runner_pid not in pids


def test_relay_off_by_setting(jws: Workspace, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_RUNNER_RELAY", "0")
    jws.computes.create("one", type="local", max_concurrent_jobs=1)
    gate = tmp_path / "gate"
    first = _hold(jws, gate, "one")
    ids = [jws.jobs.submit_command("echo x", compute="one").id for _ in range(2)]
    _queued(jws, ids)
    gate.touch()
    done = [jws.jobs.wait(i, timeout=120) for i in [first, *ids]]
    assert [j.status for j in done] == ["Completed"] * 3
    assert len({j.runner_pid for j in done}) == 3


def test_a_relay_killed_mid_job_fails_that_job_only(jws: Workspace, tmp_path: Path) -> None:
    jws.computes.create("one", type="local", max_concurrent_jobs=1)
    gate = tmp_path / "gate"
    first = _hold(jws, gate, "one")
    long = jws.jobs.submit_command("sleep 120", compute="one").id
    after = [jws.jobs.submit_command(f"echo after-{i}", compute="one").id for i in range(2)]
    _queued(jws, [long, *after])
    gate.touch()
    relay_pid = jws.jobs.wait(first, timeout=120).runner_pid
    wait_for(lambda: jws.jobs.get(long).status == "Running"
             and jws.jobs.get(long).runner_pid == relay_pid)
    os.kill(relay_pid, signal.SIGKILL)
    wait_for(lambda: not is_locked(jws.jobs.paths(long).runner_lock))
    assert jws.jobs.reap_orphans() == [long]
    assert jws.jobs.get(long).status == "Failed"
    done = [jws.jobs.wait(i, timeout=120) for i in after]
    assert [j.status for j in done] == ["Completed", "Completed"]
    assert "after-1" in jws.jobs.logs(after[1])


# --- the exchange itself, between two processes' worth of descriptors -------------------------

@pytest.fixture
def held(tmp_path: Path) -> tuple[Path, Path, object, object]:
    """A compute's slot folder, a job folder, its lock and a slot, held."""
    slot_dir, job_dir = tmp_path / "slots", tmp_path / "job"
    job_dir.mkdir()
    slot_dir.mkdir()
    lock, slot = try_lock(job_dir / "runner.lock"), try_lock(slot_dir / "slot-0.lock")
    assert lock is not None and slot is not None
    return slot_dir, job_dir, lock, slot


def test_a_handed_job_keeps_its_locks_throughout(held) -> None:
    slot_dir, job_dir, lock, slot = held
    offer = relay.Offer(slot_dir, 1)
    got: list[relay.Handed | None] = []
    t = threading.Thread(target=lambda: got.append(offer.wait(10)))
    t.start()
    assert relay.hand_over(slot_dir, job_dir, lock, slot) == os.getpid()
    t.join()
    lock.close()  # the waiting runner exits: its copies close
    slot.close()
    handed = got[0]
    assert handed is not None and handed.job_dir == job_dir
    assert is_locked(job_dir / "runner.lock") and is_locked(slot_dir / "slot-0.lock")
    handed.runner_lock.close()
    handed.slot.close()
    os.close(handed.log_fd)
    assert not is_locked(job_dir / "runner.lock") and not is_locked(slot_dir / "slot-0.lock")
    assert not list(relay.relay_dir(slot_dir).glob("*.sock")), "the offer's socket stayed"


def test_a_runner_of_another_environment_gets_nothing_and_the_offer_stays(
        held, monkeypatch: pytest.MonkeyPatch) -> None:
    """The offer's socket names its process only (the environment it compares holds secrets);
    a runner whose environment differs answers the challenge wrongly, is refused with its
    descriptors closed, and a matching runner still gets the same offer."""
    slot_dir, job_dir, lock, slot = held
    monkeypatch.setenv("MLWS_SECRET_KEY", "s3cret-value")
    offer = relay.Offer(slot_dir, 7)
    assert [p.name for p in relay.relay_dir(slot_dir).iterdir()] == [f"{os.getpid()}-7.sock"]
    got: list[relay.Handed | None] = []
    t = threading.Thread(target=lambda: got.append(offer.wait(20)))
    t.start()
    before = _open_under(slot_dir, job_dir)
    assert len(before) >= 2  # (this runner's own lock and slot: the count sees them)
    monkeypatch.setenv("MLWS_SECRET_KEY", "another-value")  # (the offer keeps its own facts)
    assert relay.hand_over(slot_dir, job_dir, lock, slot) is None
    # (files of the job and the slots only: other threads of this process open their own)
    assert _open_under(slot_dir, job_dir) == before, "received descriptors were kept open"
    assert t.is_alive(), "a refused runner ended the offer"
    monkeypatch.setenv("MLWS_SECRET_KEY", "s3cret-value")
    assert relay.hand_over(slot_dir, job_dir, lock, slot) == os.getpid()
    t.join()
    handed = got[0]
    assert handed is not None and handed.job_dir == job_dir
    for f in (handed.runner_lock, handed.slot, lock, slot):
        f.close()
    os.close(handed.log_fd)
    assert not is_locked(job_dir / "runner.lock"), "the job's lock is still held"


def _open_under(*folders: Path) -> list[str]:
    """The files under ``folders`` this process has descriptors of, one entry per descriptor."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if any(target.startswith(f"{folder}{os.sep}") for folder in folders):
            out.append(target)
    return sorted(out)


def test_the_challenge_answer_depends_on_the_challenge_and_every_fact() -> None:
    facts = relay.runner_facts()
    assert relay.proof("a" * 32, facts) == relay.proof("a" * 32, facts)
    assert relay.proof("b" * 32, facts) != relay.proof("a" * 32, facts)
    assert relay.proof("a" * 32, facts + b" ") != relay.proof("a" * 32, facts)


def test_a_dead_offer_is_removed_and_the_job_stays_here(held) -> None:
    slot_dir, job_dir, lock, slot = held
    folder = relay.relay_dir(slot_dir)
    folder.mkdir(mode=0o700)
    stale = folder / "999999-1.sock"
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(f"/proc/self/fd/{dfd}/{stale.name}")  # (the full path is too long for a socket)
    s.close()  # bound, never listening: what a killed runner leaves
    os.close(dfd)
    assert relay.hand_over(slot_dir, job_dir, lock, slot) is None
    assert not stale.exists()
    assert relay.hand_over(slot_dir / "nowhere", job_dir, lock, slot) is None
