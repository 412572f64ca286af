"""A job runs the jupyter_mlws that submitted it, even when another installation on the machine
shares the cache folder (real job, real papermill)."""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_mlws import Workspace
from jupyter_mlws.jobs.submit import package_dir


def test_jobs_run_the_package_that_submitted_them(jws: Workspace, notebook,
                                                  tmp_path: Path) -> None:
    other = tmp_path / "other-install" / "jupyter_mlws"  # another installation's package
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('the other installation')\n")
    shared = jws.cache_dir / "lib" / "jupyter_mlws"  # where one link served every installation
    shared.parent.mkdir(parents=True, exist_ok=True)
    if not shared.is_symlink():
        shared.symlink_to(other, target_is_directory=True)
    try:
        nb = notebook("import os, jupyter_mlws\n"
                      "print('PKG', os.path.realpath(jupyter_mlws.__file__))")
        job = jws.jobs.submit_notebook(nb)
        done = jws.jobs.wait(job.id, timeout=300)
        assert done.status == "Completed", jws.jobs.logs(job.id)
        mine = os.path.realpath(package_dir() / "__init__.py")
        assert f"PKG {mine}" in jws.jobs.paths(job.id).notebook_out.read_text()
        lib = Path(jws.jobs._pythonpath())
        assert lib != shared.parent and (lib / "jupyter_mlws").resolve() == package_dir().resolve()
    finally:
        if shared.is_symlink() and Path(os.readlink(shared)) == other:
            shared.unlink()
