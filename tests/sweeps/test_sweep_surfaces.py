"""``%sweep`` in a real IPython kernel, and the job monitor's live view of a sweep."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from jupyter_mlws import Workspace
from jupyter_mlws.widgets.job_monitor import JobMonitor
from tests.helpers import make_notebook, stop_jobs

CODE = "from jupyter_mlws import run\nrun.log_metric('acc', C * 2, step=1)"
NOTEBOOK_SWEEP = """\
type: sweep
trial:
  notebook: nb/train.ipynb
sampling_algorithm: grid
search_space:
  C: {type: choice, values: [0.5, 1.5, 3.0]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 3, max_concurrent_trials: 2}
"""


@pytest.fixture
def kernel(tmp_path: Path, shared_envs_dir: Path) -> Iterator[tuple[Any, Workspace, Path]]:
    code = tmp_path / "proj"
    make_notebook(code / "train.ipynb", CODE, parameters="C = 1.0")
    ws = Workspace.init(tmp_path / ".mlws")
    env = {**os.environ, "HOME": str(tmp_path), "MLWS_WORKSPACE": str(ws.path),
           "MLWS_ENVS_DIR": str(shared_envs_dir)}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(code))
    try:
        yield kc, ws, code
    finally:
        stop_jobs(ws)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        ws.close()


def _run(kc: Any, code: str, timeout: float = 180) -> tuple[str, list[dict[str, Any]]]:
    msg_id = kc.execute(code)
    out, msgs = "", []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer to {code!r}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out, msgs
        msgs.append(msg)
        if msg["msg_type"] == "stream":
            out += msg["content"]["text"]


def test_sweep_magic_runs_a_notebook_sweep_and_shows_its_trials(
        kernel: tuple[Any, Workspace, Path]) -> None:
    kc, ws, _ = kernel
    _run(kc, "%load_ext jupyter_mlws")
    out, msgs = _run(kc, "%sweep train.ipynb --search 'C=choice(0.5, 2.0)' --metric acc "
                         "--sampling grid --wait")
    assert "Completed" in out and "best: trial" in out and "acc=4" in out, out
    sweep = ws.jobs.list()[0]
    assert sweep.type == "sweep" and sweep.status == "Completed"
    assert sorted(t.params["C"] for t in ws.jobs.sweep_view(sweep.id).trials) == [0.5, 2.0]
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert not errors, errors
    _, msgs = _run(kc, "%sweep train.ipynb --search 'C=gamma(1)' --metric acc")
    (err,) = [m for m in msgs if m["msg_type"] == "error"]
    assert len(err["content"]["traceback"]) == 1
    assert "unknown search space type 'gamma'" in err["content"]["evalue"]


def test_the_job_monitor_shows_a_sweep_table_best_and_plots(tmp_path: Path, ws: Workspace
                                                            ) -> None:
    make_notebook(tmp_path / "nb" / "train.ipynb", CODE, parameters="C = 1.0")
    (tmp_path / "sweep.yml").write_text(NOTEBOOK_SWEEP)  # a notebook trial, in sweepJob YAML
    job = ws.jobs.create_from_file(tmp_path / "sweep.yml")
    try:
        monitor = JobMonitor(ws, job.id, poll_s=0.2)
        assert monitor.wait(timeout=180)
    finally:
        stop_jobs(ws)
    assert monitor.status == "Completed"
    assert monitor.sweep is not None and monitor.sweep.best.params == {"C": 3.0}
    shown = monitor._sweep.value
    assert "<table" in shown and shown.count("<svg") == 2 and "best</b>: trial" in shown
    assert shown.index("3.0") < shown.index("1.5")  # best first
