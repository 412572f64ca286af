"""Job overlays made ahead of time for the warm workers of cached venvs.

A local job in an environment's cached venv runs in its own overlay venv
(:mod:`jupyter_mlws.compute.job_venv`), so that what it installs stays its own. A warm worker
for such an interpreter is started, before any job, from a fresh overlay the agent makes in
``<workspace>/agent/overlays/<id>/<env hash>``: the job that claims the worker gets the overlay
with it (its ``pip install`` goes there), and the runner removes it when the job ends. An
overlay is never used by a second job.

Each overlay folder holds a ``.lock`` that its worker holds (the agent takes it before the
worker starts and hands the descriptor down); a folder whose lock is free belongs to no live
worker and is swept (by the agent when it starts, and by the orphan reaper).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from pathlib import Path

from jupyter_mlws.agent import agent_dir

OVERLAYS_DIRNAME = "overlays"
LOCK_NAME = ".lock"
#: A folder still without its lock after this long was left by an agent that died making it.
UNLOCKED_STALE_S = 600.0


def overlays_dir(workspace: str | Path) -> Path:
    return agent_dir(workspace) / OVERLAYS_DIRNAME


def prepare(workspace: str | Path, cached_python: str) -> tuple[Path, int]:
    """A fresh overlay of the cached venv of ``cached_python``: its interpreter, and a
    descriptor holding the overlay's lock (for the worker to inherit; close it after)."""
    from jupyter_mlws.compute.job_venv import make_overlay

    root = overlays_dir(workspace) / secrets.token_hex(6)
    root.mkdir(parents=True, mode=0o700)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        python = make_overlay(Path(cached_python), root)
    except BaseException:
        os.close(fd)
        shutil.rmtree(root, ignore_errors=True)
        raise
    return python, fd


def owned_root(workspace: str | Path, overlay_python: str | Path) -> Path | None:
    """The overlay folder (``overlays/<id>``) of ``overlay_python`` if it is one of this
    workspace's agent overlays (a real folder, not a link); ``None`` otherwise."""
    root = Path(overlay_python).parent.parent.parent
    if (root.parent != overlays_dir(workspace) or root.is_symlink() or not root.is_dir()
            or overlays_dir(workspace).is_symlink()):
        return None
    return root


def remove(workspace: str | Path, overlay_python: str | Path) -> None:
    """Remove the overlay of ``overlay_python`` (a job's, once it ended)."""
    root = owned_root(workspace, overlay_python)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def sweep(workspace: str | Path) -> int:
    """Remove the overlays whose lock no live worker holds; how many were removed."""
    folder = overlays_dir(workspace)
    if not folder.is_dir() or folder.is_symlink():
        return 0
    removed = 0
    for root in folder.iterdir():
        if root.is_symlink() or not root.is_dir():
            continue
        try:
            fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:  # being made (left alone), or its maker died before the lock
            if _older_than(root, UNLOCKED_STALE_S):
                shutil.rmtree(root, ignore_errors=True)
                removed += 1
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live worker (or the job on it) holds it
        finally:
            os.close(fd)
        shutil.rmtree(root, ignore_errors=True)
        removed += 1
    return removed


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.lstat().st_mtime > seconds
    except OSError:
        return False
