"""Log parts through an fsspec (``file://``) artifact store: no servers needed. The publisher
reads the job's files without following links; a reader gets one append-only text by offset."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_mlws.artifacts.backends import FsspecBackend
from jupyter_mlws.jobs import log_parts
from jupyter_mlws.jobs.paths import JobPaths


def _setup(tmp_path: Path) -> tuple[FsspecBackend, JobPaths]:
    store = FsspecBackend((tmp_path / "bucket").as_uri())
    paths = JobPaths(tmp_path / "jobs" / "j1")
    paths.make()
    return store, paths


def test_parts_append_in_order_and_end_marks_the_total(tmp_path: Path) -> None:
    store, paths = _setup(tmp_path)
    pub = log_parts.LogPublisher(store, paths, "j1")
    assert not pub.flush()  # nothing written yet: no part
    paths.prepare_log.write_bytes(b"[mlws] preparing\n")
    paths.job_log.write_bytes("épsilon ".encode())
    pub.job_running()
    assert pub.flush()
    first = log_parts.read_parts(store, "j1", 0)
    assert first.data == "[mlws] preparing\népsilon ".encode() and first.end is None
    with open(paths.job_log, "ab") as f:
        f.write(b"second\n")
    pub.finish()
    names = [n for n, _ in store.list_folder(log_parts.folder("j1"))]
    assert names == [log_parts.part_name(first.offset), log_parts.part_name(pub.total), "end"]
    rest = log_parts.read_parts(store, "j1", first.offset)
    assert rest.data == b"second\n" and rest.end == pub.total == rest.offset
    # from the middle of a part, and in pages of 3 bytes
    assert log_parts.read_parts(store, "j1", 5).data == first.data[5:] + b"second\n"
    got, offset = b"", 0
    while True:
        page = log_parts.read_parts(store, "j1", offset, limit=3)
        if not page.data:
            break
        got, offset = got + page.data, page.offset
    assert got == log_parts.read_all(store, "j1") == first.data + b"second\n"
    marker = json.loads(store.get_object(f"{log_parts.folder('j1')}/end"))
    assert marker == {"total": len(got)}


def test_a_log_the_job_replaced_by_a_link_is_not_followed(tmp_path: Path) -> None:
    store, paths = _setup(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    paths.job_log.symlink_to(secret)
    paths.prepare_log.write_text("ok\n")
    pub = log_parts.LogPublisher(store, paths, "j1")
    pub.finish()
    assert log_parts.read_all(store, "j1") == b"ok\n"


def test_the_jobs_own_log_is_published_only_once_it_is_recorded_running(tmp_path: Path) -> None:
    """A process started ahead (a warm kernel) prints before its job is Running: readers on
    other machines get those lines only after the status says Running, and all of them."""
    store, paths = _setup(tmp_path)
    pub = log_parts.LogPublisher(store, paths, "j1")
    paths.prepare_log.write_bytes(b"[mlws] preparing\n")
    paths.job_log.write_bytes(b"early line\n")
    assert pub.flush()
    assert log_parts.read_all(store, "j1") == b"[mlws] preparing\n"
    assert not pub.flush()  # the job's bytes wait
    pub.job_running()
    assert pub.flush()
    assert log_parts.read_all(store, "j1") == b"[mlws] preparing\nearly line\n"


def test_a_job_that_never_ran_still_publishes_its_whole_log_at_the_end(tmp_path: Path) -> None:
    store, paths = _setup(tmp_path)
    pub = log_parts.LogPublisher(store, paths, "j1")
    paths.job_log.write_bytes(b"printed before a failed start\n")
    pub.finish()
    assert log_parts.read_all(store, "j1") == b"printed before a failed start\n"
