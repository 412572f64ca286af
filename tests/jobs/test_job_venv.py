"""A local job's ``pip install`` goes into its own overlay venv: the job can import what it
installed, the cached venv stays byte-identical and the next job does not see it."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.environments.pyc_cache import PASS_LOCK, wait_for_bytecode


def make_wheel(folder: Path, name: str, value: str) -> Path:
    """A pure-Python wheel of one module ``name`` with ``VALUE = value`` (no build, no index)."""
    dist = f"{name}-0.1"
    files = {f"{name}.py": f"VALUE = {value!r}\n".encode(),
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\n"
                                           "Version: 0.1\n".encode(),
             f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                        b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


def tree_digest(root: Path) -> dict[str, str]:
    """Every file, folder and link under ``root`` with a hash of its content (or target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            elif full.is_file():
                out[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def built_venv(ws: Workspace, env: Any) -> Path:
    """The cached venv of ``env``, built, once its background bytecode pass has ended."""
    cached = Path(ws.environments.build(env, builder="venv").image)
    assert wait_for_bytecode(cached, 300) is not None, "the bytecode pass did not end"
    return cached


def test_a_jobs_pip_install_stays_in_the_job(jws: Workspace, tmp_path: Path) -> None:
    env = jws.environments.create("with-pip", pip_requirements=["pip"])
    cached = built_venv(jws, env)
    before = tree_digest(cached)
    wa = make_wheel(tmp_path, "mlws_tiny_a", "from pip")
    wb = make_wheel(tmp_path, "mlws_tiny_b", "from python -m pip")
    job = jws.jobs.submit_command(
        f"pip install --no-index --no-deps {wa} && python -m pip install --no-index --no-deps "
        f"{wb} && python -c 'import mlws_tiny_a, mlws_tiny_b, sys; "
        "print(mlws_tiny_a.VALUE, \"/\", mlws_tiny_b.VALUE, \"/\", sys.prefix)'",
        environment="with-pip")
    done = jws.jobs.wait(job.id, timeout=600)
    log = jws.jobs.logs(job.id)
    assert done.status == "Completed", log
    assert "from pip / from python -m pip / " + str(jws.jobs.paths(job.id).venvs) in log
    assert tree_digest(cached) == before  # not one file added, changed or removed
    other = jws.jobs.submit_command(
        "python -c 'import mlws_tiny_a' 2>&1 || echo NOT_INSTALLED; python -c 'import sys; "
        "print(sys.prefix)'", environment="with-pip")
    other_done = jws.jobs.wait(other.id, timeout=600)
    assert other_done.status == "Completed"
    assert "NOT_INSTALLED" in jws.jobs.logs(other.id)
    assert tree_digest(cached) == before


def test_a_job_started_while_the_venvs_bytecode_pass_runs_writes_none_into_it(
        jws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build returns before its packages' bytecode is written (a background pass); a job
    started meanwhile compiles what it imports in memory and leaves the cached venv as it is."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # (jobs inherit it)
    env = jws.environments.create("pass-running", pip_requirements=["six==1.16.0"])
    cached = built_venv(jws, env)
    site = next(cached.glob("lib/python3*/site-packages"))
    for pyc in site.glob("__pycache__/six.*.pyc"):  # as before the pass has reached six
        pyc.unlink()
    before = tree_digest(cached)
    fd = os.open(cached / PASS_LOCK, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the pass runs (as its process holds this lock)
        job = jws.jobs.submit_command(
            "python -c 'import os, six, sys; print(\"DONT\", sys.dont_write_bytecode, "
            "os.environ.get(\"PYTHONDONTWRITEBYTECODE\"), six.__version__)'",
            environment="pass-running")
        done = jws.jobs.wait(job.id, timeout=600)
    finally:
        os.close(fd)
    assert done.status == "Completed", jws.jobs.logs(job.id)
    assert "DONT True 1 1.16.0" in jws.jobs.logs(job.id)
    assert tree_digest(cached) == before  # six imported, no bytecode of it written
    assert not list(site.glob("__pycache__/six.*.pyc"))
    # once the pass has ended, a job runs as any other: the variable is not set for it
    job = jws.jobs.submit_command(
        "python -c 'import os; print(\"SET\", os.environ.get(\"PYTHONDONTWRITEBYTECODE\"))'",
        environment="pass-running")
    assert jws.jobs.wait(job.id, timeout=600).status == "Completed"
    assert "SET None" in jws.jobs.logs(job.id)
