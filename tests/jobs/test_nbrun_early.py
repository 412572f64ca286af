"""The job's process (:mod:`jupyter_mlws.jobs.nbrun`) starts its kernel before it imports
papermill; whatever happens then, the kernel does not outlive it.

Real nbrun processes, real kernels, real papermill. A kernel is found by the token its job's
process hands down in its environment (as the reaper finds a job's processes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlws.jobs.process_identity import TOKEN_VAR, has_token, new_token
from tests.helpers import make_notebook
from tests.jobs.test_agent import wait_for

ROOT = Path(__file__).resolve().parents[2]


def carrying(token: str, but: int | None = None) -> list[int]:
    """Live processes (not zombies) started with ``token`` in their environment."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == but:
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and has_token(int(entry), token):
            found.append(int(entry))
    return found


def nbrun(folder: Path, notebook: Path, token: str) -> subprocess.Popen[bytes]:
    (folder / "params.json").write_text(json.dumps({}))
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlws.jobs.nbrun", str(notebook),
         str(folder / "out.ipynb"), str(folder / "params.json"), str(folder / "result.json")],
        cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT), TOKEN_VAR: token},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_a_notebook_papermill_cannot_read_leaves_no_kernel(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ipynb"  # JSON, and a kernelspec: the kernel starts, papermill fails
    bad.write_text(json.dumps({"cells": "not a list", "nbformat": 4, "nbformat_minor": 5,
                               "metadata": {"kernelspec": {"name": "python3"}}}))
    token = new_token()
    proc = nbrun(tmp_path, bad, token)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out.decode()
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["status"] == "failed" and report["message"].startswith(
        "the notebook could not run"), report
    assert carrying(token) == []  # the kernel it started is gone with it


def test_a_failing_cell_reports_and_the_kernel_is_shut_down(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "nb.ipynb", "import atexit, pathlib\n"
                       "atexit.register(pathlib.Path('atexit-ran').touch)",
                       "raise ValueError('boom')")
    token = new_token()
    proc = nbrun(tmp_path, nb, token)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out.decode()
    report = json.loads((tmp_path / "result.json").read_text())
    assert (report["status"], report["ename"], report["cell_index"]) == \
        ("failed", "ValueError", 1)
    assert carrying(token) == []
    assert (tmp_path / "atexit-ran").exists()  # shut down gracefully, as nbclient does


def test_a_terminated_job_process_takes_its_kernel_with_it(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "nb.ipynb", "import time\ntime.sleep(300)")
    token = new_token()
    proc = nbrun(tmp_path, nb, token)
    try:
        assert wait_for(lambda: carrying(token, but=proc.pid), timeout=180)  # its kernel
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM  # (as without an early kernel)
        wait_for(lambda: not carrying(token), timeout=60)
    finally:
        for pid in carrying(token):
            os.killpg(pid, signal.SIGKILL)


def test_the_kernel_still_imports_what_the_job_process_skips(tmp_path: Path) -> None:
    """nbrun keeps rfc3987_syntax out of its own process only: the job's code has it."""
    pytest.importorskip("rfc3987_syntax")
    nb = make_notebook(tmp_path / "nb.ipynb", "import rfc3987_syntax, sys\n"
                       "print('LOADED', 'rfc3987_syntax' in sys.modules)")
    proc = nbrun(tmp_path, nb, new_token())
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()
    assert "LOADED True" in (tmp_path / "out.ipynb").read_text()
