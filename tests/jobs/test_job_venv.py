"""A local job's ``pip install`` goes into its own overlay venv: the job can import what it
installed, the cached venv stays byte-identical and the next job does not see it."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from jupyter_mlws import Workspace


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


def test_a_jobs_pip_install_stays_in_the_job(jws: Workspace, tmp_path: Path) -> None:
    env = jws.environments.create("with-pip", pip_requirements=["pip"])
    cached = Path(jws.environments.build(env, builder="venv").image)
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
