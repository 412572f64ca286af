"""A job's own venv layered over a cached one, so that what a job installs stays its own.

Cached venvs are shared by every job (and workspace) on the machine: a job that ran
``pip install`` in one changed it for all. A local job in a cached venv runs instead in an
*overlay*: a venv made in the job's folder (``venv`` without pip, symlinks to the same base
interpreter: about a millisecond in-process, ~150 ms when another interpreter must make it) whose site-packages holds a ``.pth`` adding the
cached venv's site-packages (with its own ``.pth`` files) after its own. ``python``, ``pip`` and
``python -m pip`` in the job install into the overlay, which shadows the cached packages; pip
does not uninstall what lies outside the running venv. The cached venv's ``bin`` stays on
``PATH`` after the overlay's for its other commands. The overlay is removed when the job ends.
A job on a warm worker of the job agent runs in an overlay the agent made ahead of time, the
same way (:mod:`jupyter_mlws.agent.overlays`).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from jupyter_mlws.errors import MlwsError

PTH_NAME = "_mlws_cached_venv.pth"


def is_cached_venv(python: str) -> bool:
    """Whether ``python`` is the interpreter of a venv (not the interpreter running mlws)."""
    return python != sys.executable and (Path(python).parent.parent / "pyvenv.cfg").exists()


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise MlwsError(f"The venv {str(venv)!r} has no lib/python*/site-packages folder.",
                        hint="Rebuild its environment (`mlws env build --builder venv`).")
    return found[0]


def _same_base(cached: Path) -> bool:
    """Whether the venv ``cached`` was made from the interpreter running this code."""
    cfg = {}
    with contextlib.suppress(OSError):
        for line in (cached / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                cfg[key.strip()] = value.strip()
    base = getattr(sys, "_base_executable", sys.executable)
    version = ".".join(str(x) for x in sys.version_info[:3])
    return (cfg.get("home") == str(Path(base).parent)
            and cfg.get("version", cfg.get("version_info", "")).startswith(version))


def make_overlay(cached_python: Path, where: Path) -> Path:
    """Make the job's overlay of the venv of ``cached_python`` under ``where`` (named like the
    cached venv's folder, its environment hash); return the overlay's interpreter."""
    cached = Path(cached_python).parent.parent
    overlay = where / cached.name
    python = overlay / "bin" / "python"
    if (overlay / "bin" / "pip").exists():  # written last: the overlay is complete
        return python
    shutil.rmtree(overlay, ignore_errors=True)
    where.mkdir(parents=True, exist_ok=True)
    if _same_base(cached):  # in this process: under a millisecond
        venv.EnvBuilder(symlinks=True, with_pip=False).create(overlay)
    else:  # another interpreter (e.g. a uv-provided Python): let it make its own
        proc = subprocess.run([str(cached_python), "-m", "venv", "--without-pip", str(overlay)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise MlwsError(f"The job's own venv over {str(cached)!r} could not be made: "
                            f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    base_site, site = _site_packages(cached), _site_packages(overlay)
    (site / PTH_NAME).write_text(f"import site; site.addsitedir({str(base_site)!r})\n",
                                 encoding="utf-8")
    version = site.parent.name[len("python"):]  # "3.11"
    for name in (f"pip{version}", "pip3", "pip"):  # the cached pip, installing into the overlay
        script = overlay / "bin" / name
        script.write_text(f'#!/bin/sh\nexec {shlex.quote(str(python))} -m pip "$@"\n',
                          encoding="utf-8")
        script.chmod(0o755)
    return python


def overlay_env(env: dict[str, str], overlay_python: Path, cached_python: Path) -> dict[str, str]:
    """``env`` for a process of the overlay: its bin, then the cached venv's, first on PATH;
    while the cached venv's bytecode pass runs, no bytecode is written (the cached venv stays
    as its build and pass leave it)."""
    out = dict(env)
    overlay, cached = overlay_python.parent.parent, Path(cached_python).parent.parent
    rest = [p for p in out.get("PATH", "").split(os.pathsep)
            if p and p not in (str(overlay / "bin"), str(cached / "bin"))]
    out["PATH"] = os.pathsep.join([str(overlay / "bin"), str(cached / "bin"), *rest])
    out["VIRTUAL_ENV"] = str(overlay)
    from jupyter_mlws.environments.pyc_cache import bytecode_pass_running

    if bytecode_pass_running(cached):  # the cached venv's bytecode is being written by its
        out["PYTHONDONTWRITEBYTECODE"] = "1"  # pass: the job compiles in memory, writes none
    share = cached / "share" / "jupyter"
    if share.is_dir():  # kernel specs the cached venv installed
        out["JUPYTER_PATH"] = os.pathsep.join(
            p for p in (out.get("JUPYTER_PATH"), str(share)) if p)
    return out
