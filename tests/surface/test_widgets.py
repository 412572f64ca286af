"""The job monitor and the asset browser, with a real workspace and real jobs (in this process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.widgets.asset_browser import AssetBrowser
from jupyter_mlws.widgets.job_monitor import JobMonitor, LogTail, sparkline_svg
from tests.helpers import make_notebook, stop_jobs

ORDER = ["Queued", "Preparing", "Running", "Completed"]


@pytest.fixture
def sws(ws: Workspace) -> Iterator[Workspace]:
    yield ws
    stop_jobs(ws)


def _in_order(seen: list[str], order: list[str]) -> bool:
    positions = [order.index(s) for s in seen]
    return positions == sorted(positions) and len(set(positions)) == len(positions)


def test_monitor_follows_a_notebook_job_to_the_end(sws: Workspace, tmp_path: Path) -> None:
    nb = make_notebook(
        tmp_path / "code" / "ticks.ipynb",
        "import time\nfrom jupyter_mlws import run",
        "for i in range(n):\n"
        "    print(f'tick {i}', flush=True)\n"
        "    run.log_metric('loss', 1.0 / (i + 1), step=i)\n"
        "    time.sleep(0.4)",
        "print('all done')",
        parameters="n = 5",
    )
    job = sws.jobs.submit_notebook(nb, {"n": 5})
    monitor = JobMonitor(sws, job.id, poll_s=0.1)
    assert monitor.statuses[0] in ("Queued", "Preparing", "Running")
    live_ticks = False
    deadline = time.monotonic() + 120
    while not monitor.done:
        if monitor.status == "Running" and any("tick" in ln for ln in monitor.log_lines):
            live_ticks = True  # lines show up while the job still runs
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.05)
    assert monitor.wait(timeout=1)
    assert live_ticks
    assert monitor.status == "Completed" and monitor.done
    assert monitor.statuses[-1] == "Completed" and "Running" in monitor.statuses
    assert _in_order(monitor.statuses, ORDER)
    assert monitor.progress == {"executed": 5, "total": 5}  # 4 cells + injected parameters
    assert monitor._bar.value == monitor._bar.max == 5
    assert monitor._bar_row.layout.display == "flex"
    assert [ln for ln in monitor.log_lines if ln.startswith("tick")] == [
        f"tick {i}" for i in range(5)]
    assert "all done" in "\n".join(monitor.log_lines)
    assert [(m.key, m.step) for m in monitor.metrics] == [("loss", i) for i in range(5)]
    assert "loss" in monitor._metrics.value and "<polyline" in monitor._plot.value
    for status in ("Queued", "Running", "Completed"):
        assert f"<b>{status}</b>" in monitor._timeline.value
    assert str(sws.jobs.paths(job.id).notebook_out) in monitor._links.value
    assert monitor._cancel.disabled
    assert repr(monitor) == f"JobMonitor(job={job.id}, status=Completed)"
    # polling stopped: the thread is gone and nothing polls any more
    polls = monitor.polls
    time.sleep(0.5)
    monitor.poll()
    assert monitor.polls == polls
    assert monitor._thread is not None and not monitor._thread.is_alive()


def test_cancel_button_cancels_a_running_job_then_disables(sws: Workspace, tmp_path: Path
                                                           ) -> None:
    nb = make_notebook(tmp_path / "code" / "sleepy.ipynb",
                       "print('sleeping', flush=True)", "import time\ntime.sleep(120)")
    job = sws.jobs.submit_notebook(nb)
    monitor = JobMonitor(sws, job.id, poll_s=0.1)
    deadline = time.monotonic() + 60
    while not any("sleeping" in ln for ln in monitor.log_lines):
        assert time.monotonic() < deadline, monitor.log_lines
        time.sleep(0.05)
    assert monitor.status == "Running" and not monitor._cancel.disabled
    monitor._cancel.click()
    assert monitor._cancel.disabled
    assert monitor.wait(timeout=60)
    assert monitor.status == "Canceled" and monitor.statuses[-1] == "Canceled"
    assert sws.jobs.get(job.id).status == "Canceled"
    assert monitor._cancel.disabled and monitor._cancel.description == "Canceled"
    polls = monitor.polls
    time.sleep(0.4)
    assert monitor.polls == polls


def test_monitor_of_a_command_job_has_no_cell_progress(sws: Workspace) -> None:
    job = sws.jobs.submit_command("echo one; echo two; printf 'no newline at the end'")
    monitor = JobMonitor(sws, job.id, poll_s=0.1)
    assert monitor.wait(timeout=60)
    assert monitor.status == "Completed" and monitor.progress is None
    assert monitor._bar_row.layout.display == "none"
    assert monitor.log_lines[-3:] == ["one", "two", "no newline at the end"]


def test_monitor_of_a_finished_job_polls_once(sws: Workspace) -> None:
    job = sws.jobs.submit_command("echo hi")
    sws.jobs.wait(job.id, timeout=60)
    monitor = JobMonitor(sws, job.id)
    assert monitor.done and monitor.polls == 1 and monitor._thread is None
    assert "hi" in monitor.log_lines


def test_log_tail_reads_only_what_was_appended(tmp_path: Path) -> None:
    from jupyter_mlws.jobs.logs import decode_complete, read_log_chunk

    a, b = tmp_path / "prepare.log", tmp_path / "job.log"

    def read_chunk(offset: int) -> tuple[str, int]:  # what ws.jobs.read_log does, on two files
        data, _end, total = read_log_chunk([a, b], offset)
        text, used = decode_complete(data, final=False)
        return text, min(offset, total) + used

    tail = LogTail(read_chunk, maxlen=3)
    assert tail.read() == 0  # no files yet
    a.write_text("p1\n")
    with open(b, "w") as f:
        f.write("j1\nj2\npart")
    assert tail.read() == 3
    assert tail.bytes_read == a.stat().st_size + b.stat().st_size
    with open(b, "a") as f:
        f.write("ial\nj4\n")
    assert tail.read() == 2
    assert list(tail.lines) == ["j2", "partial", "j4"]  # the last 3 lines
    assert tail.count == 5
    assert tail.bytes_read == a.stat().st_size + b.stat().st_size  # each byte read once
    with open(b, "a") as f:
        f.write("tail without newline")
    assert tail.read() == 0
    assert tail.flush() == 1 and tail.lines[-1] == "tail without newline"


def test_sparkline() -> None:
    svg = sparkline_svg([(0, 1.0), (1, 0.5), (2, 0.25)])
    assert svg.startswith("<svg") and "<polyline" in svg and "0.25" in svg
    assert sparkline_svg([]) == ""
    assert "<polyline" in sparkline_svg([(0, 2.0), (0, 2.0)])  # a flat, single-x series


def test_asset_browser_shows_versions_and_lineage(sws: Workspace, tmp_path: Path) -> None:
    job = sws.jobs.submit_command(
        "mkdir -p ${{outputs.model}} && echo w > ${{outputs.model}}/w.txt",
        outputs={"model": {}}, display_name="make-model")
    assert sws.jobs.wait(job.id, timeout=60).status == "Completed"
    sws.models.create("m", f"mlws://jobs/{job.id}/outputs/model", tags={"stage": "dev"})
    (tmp_path / "m2").write_text("local")
    sws.models.create("m", tmp_path / "m2")
    sws.environments.create_from_text("env-a", "numpy\n")

    browser = AssetBrowser(sws)
    assert browser.kind == "model" and browser.names == ["m"]
    assert browser.headers[:3] == ["version", "created", "type"]
    by_version = {row[0]: row for row in browser.rows}
    assert set(by_version) == {"1", "2"}
    assert by_version["1"][4] == job.id and by_version["1"][3] == {"stage": "dev"}
    assert by_version["2"][4] is None
    assert job.id in browser._details.value

    browser.select("environment")
    assert "env-a" in browser.names and "MLWS-python-3.11-minimal" in browser.names
    browser.select(name="env-a")
    env = sws.environments.get("env-a")
    assert browser.rows[0][2] == env.env_hash[:12] and browser.rows[0][3] == env.image

    browser.select("job", job.id)
    kinds = {(row[0], row[1]) for row in browser.rows}
    assert ("output", "model") in kinds and ("registered", "m:1") in kinds
    assert "make-model" in browser._details.value

    browser.select("data")
    assert browser.names == [] and "No data registered yet" in browser._details.value


def test_monitor_of_an_unknown_job_fails_at_once(sws: Workspace) -> None:
    from jupyter_mlws.errors import MlwsError

    with pytest.raises(MlwsError):
        JobMonitor(sws, "no_such_job")
