"""The one atomic JSON writer and the places that use it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws.endpoints.paths import write_json as endpoint_write_json
from jupyter_mlws.fileio import write_json_atomic
from jupyter_mlws.jobs.pipeline import write_json as pipeline_write_json
from jupyter_mlws.jobs.process_identity import ProcessIdentity


def _identity(path: Path, i: int) -> None:
    ProcessIdentity(pid=i, start_time=i, token=f"t{i}").write(path)


WRITERS: dict[str, Callable[[Path, int], Any]] = {
    "write_json_atomic": lambda p, i: write_json_atomic(p, {"pid": i, "pad": "x" * 4096}),
    "pipeline": lambda p, i: pipeline_write_json(p, {"pid": i, "pad": "x" * 4096}),
    "endpoint": lambda p, i: endpoint_write_json(p, {"pid": i, "pad": "x" * 4096}),
    "process_identity": _identity,
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_two_writers_of_the_same_file_never_collide(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "state.json"
    write = WRITERS[writer]
    errors: list[BaseException] = []
    bad: list[str] = []
    start = threading.Barrier(3)

    def run(base: int) -> None:
        start.wait()
        for i in range(200):
            try:
                write(path, base + i)
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                errors.append(exc)

    def read() -> None:
        start.wait()
        for _ in range(400):
            try:
                data = json.loads(path.read_text())
            except FileNotFoundError:
                continue
            except ValueError:
                bad.append("half-written")
            else:
                if not isinstance(data.get("pid"), int):
                    bad.append(repr(data))

    threads = [threading.Thread(target=run, args=(b,)) for b in (0, 1000)]
    threads.append(threading.Thread(target=read))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and bad == []
    assert isinstance(json.loads(path.read_text())["pid"], int)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_the_mode_is_applied(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a.json", {"a": 1})
    write_json_atomic(tmp_path / "b.json", {"b": 1}, mode=0o644)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o644


def test_one_human_size_for_errors_and_the_cli() -> None:
    import errno

    from jupyter_mlws import artifacts, fileio
    from jupyter_mlws.cli import _format
    from jupyter_mlws.errors import DiskFullError
    from jupyter_mlws.store import retrying

    assert _format.human_size is fileio.human_size
    assert artifacts.is_disk_full is retrying.is_disk_full is fileio.is_disk_full
    assert fileio.human_size(3 * 1024 * 1024) == "3.0 MB" and fileio.human_size(None) == ""
    text = str(DiskFullError("/d", needed=2048, free=12, what="the file"))
    assert "the file needs 2.0 KB and 12 B is free" in text
    assert fileio.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not fileio.is_disk_full(OSError(errno.EACCES, "Permission denied"))
