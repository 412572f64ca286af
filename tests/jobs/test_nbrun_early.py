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


def test_a_kernel_still_running_code_is_interrupted_then_shut_down_gracefully(
        tmp_path: Path) -> None:
    """A shutdown asked on the shell channel waits behind running code; after a second the
    kernel gets the standard shutdown (interrupt, then the control channel), atexit and all."""
    from jupyter_core.utils import run_sync

    from jupyter_mlws.jobs import nbrun as job_process

    km = job_process.start_kernel("python3")
    assert km is not None
    kc = km.client()
    kc.start_channels()
    run_sync(kc.wait_for_ready)(timeout=120)
    kc.execute(f"import atexit, pathlib, time\n"
               f"atexit.register(pathlib.Path({str(tmp_path / 'ran')!r}).touch)\n"
               "time.sleep(300)")
    kc.stop_channels()
    pid = km.provisioner.pid
    job_process.shutdown_kernel(km)
    assert not run_sync(km.is_alive)()
    assert not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert (tmp_path / "ran").exists()


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
    """nbrun keeps its unused modules out of its own process only: the job's code has them."""
    from jupyter_mlws.jobs.nbrun import UNUSED_MODULES

    installed = [m for m in UNUSED_MODULES if _installed(m)]
    assert "boto3" in installed  # (a dependency: the team artifact store)
    nb = make_notebook(tmp_path / "nb.ipynb", "import importlib, sys\n"
                       f"for name in {installed!r}:\n"
                       "    importlib.import_module(name)\n"
                       f"print('LOADED', all(n in sys.modules for n in {installed!r}))")
    proc = nbrun(tmp_path, nb, new_token())
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()
    assert "LOADED True" in (tmp_path / "out.ipynb").read_text()


def _installed(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # (a parent package is missing)
        return False


def test_the_job_process_loads_neither_ipython_nor_remote_store_clients(tmp_path: Path) -> None:
    """What the job's process imports to run a notebook: papermill and jupyter_client, not
    IPython (the kernel's) nor the S3/HDFS clients papermill would load when installed."""
    nb = make_notebook(tmp_path / "nb.ipynb", "print('ran')")
    (tmp_path / "params.json").write_text("{}")
    watch = ["IPython", "boto3", "botocore", "pyarrow", "rfc3987_syntax"]
    args = [str(nb), str(tmp_path / "out.ipynb"), str(tmp_path / "params.json"),
            str(tmp_path / "result.json")]
    code = ("import atexit, runpy, sys\n"
            f"atexit.register(lambda: print('MODULES', [m for m in {watch!r} "
            "if sys.modules.get(m) is not None]))\n"
            f"sys.argv = ['nbrun', *{args!r}]\n"
            "runpy.run_module('jupyter_mlws.jobs.nbrun', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    assert "MODULES []" in proc.stdout, proc.stdout


def test_kernels_are_looked_for_where_jupyter_client_looks(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's kernelspec manager searches the same folders as jupyter_client's default
    (which imports IPython to find the IPython folder); a kernel there is found."""
    from jupyter_client.kernelspec import KernelSpecManager

    from jupyter_mlws.jobs.nbrun import choose_kernel, kernel_specs

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    assert kernel_specs().kernel_dirs == KernelSpecManager().kernel_dirs
    spec = tmp_path / "ipython" / "kernels" / "mine"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "Mine", "language": "python"}))
    assert choose_kernel({"metadata": {"kernelspec": {"name": "mine"}}}) == ("mine", None)
    kernel, note = choose_kernel({"metadata": {"kernelspec": {"name": "elsewhere"}}})
    assert kernel == "python3" and note and "'elsewhere' is not in this environment" in note
