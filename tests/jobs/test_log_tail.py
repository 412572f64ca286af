"""The tail of a job's log is read back from the end, not by loading the whole log."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from jupyter_mlws.jobs.logs import read_log_text
from tests.memcap import address_space_capped


def test_the_tail_of_a_200000_line_log(jws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    job = jws.jobs.submit_command(
        "python -c \"import sys; sys.stdout.write(''.join(f'line {i}\\n' for i in range(200000)))\"")
    done = jws.jobs.wait(job.id, timeout=120)
    assert done.status == "Completed", jws.jobs.logs(job.id)
    want = [f"line {i}" for i in range(199995, 200000)]
    assert jws.jobs.logs(job.id, tail=5).splitlines() == want
    tail = jws.jobs.read_log_tail(job.id, 5)
    assert tail["text"].splitlines() == want and tail["done"]
    assert tail["offset"] == jws.jobs.read_log(job.id, 0, max_bytes=1 << 30)["offset"]
    monkeypatch.setenv("MLWS_WORKSPACE", str(jws.path))
    shown = CliRunner().invoke(main, ["job", "logs", job.id, "--tail", "5"],
                               catch_exceptions=False)
    assert shown.exit_code == 0 and shown.output.splitlines() == want


def test_a_huge_log_is_not_read_whole(jws: Workspace) -> None:
    """A 4 GB log (sparse: no disk used) ending in a few lines: its tail is answered within a
    memory cap far below its size; reading it whole could not be."""
    job = jws.jobs.wait(jws.jobs.submit_command("echo started").id, timeout=120)
    assert job.status == "Completed", jws.jobs.logs(job.id)
    log = jws.jobs.paths(job.id).job_log
    with open(log, "r+b") as f:
        f.truncate(4 << 30)
        f.seek(0, 2)
        f.write(b"\n" + b"".join(b"line %d\n" % i for i in range(10)))
    with address_space_capped(256 * 1024 * 1024):
        text = jws.jobs.logs(job.id, tail=3)
        chunk = jws.jobs.read_log_tail(job.id, 2)
    assert text.splitlines() == ["line 7", "line 8", "line 9"]
    assert chunk["text"].splitlines() == ["line 8", "line 9"]


PARTS = [b"", b"prep 1\nprep 2\n", b"no newline at the end", b"\r\nwindows\r\nline\r\n",
         "caf\u00e9 \u2028 sep\n\n\n".encode(), b"bad \xff\xfe utf-8\nx", b"\n\n"]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64 * 1024])
def test_the_tail_is_what_the_whole_log_gives(tmp_path: Path, block: int) -> None:
    """Any two parts, any block size, any number of lines: the same lines as slicing the whole
    text (including a part that is a link, shown as a note, and a missing part)."""
    from jupyter_mlws.jobs.logs import read_log_tail

    root = tmp_path / "job"
    root.mkdir()
    prepare, job_log = root / "prepare.log", root / "job.log"
    for first, second in itertools.product(PARTS, repeat=2):
        for p in (prepare, job_log):
            p.unlink(missing_ok=True)
        if first:
            prepare.write_bytes(first)
        if second == b"\n\n":
            job_log.symlink_to(prepare)
        else:
            job_log.write_bytes(second)
        whole = read_log_text([prepare, job_log], root)
        for n in range(0, 9):
            expected = "\n".join(whole.splitlines()[-n:])
            assert read_log_tail([prepare, job_log], root, n, block=block) == expected, (
                first, second, n)
