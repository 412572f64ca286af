"""What the agent's sweep removes of the venv overlays it made (real folders and file locks)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from jupyter_mlws.agent import overlays


def _overlay(workspace: Path, name: str, *, lock: bool = True) -> Path:
    root = overlays.overlays_dir(workspace) / name
    (root / "bin").mkdir(parents=True)
    if lock:
        (root / overlays.LOCK_NAME).touch()
    return root


def test_the_sweep_removes_only_overlays_nobody_holds(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    held = _overlay(workspace, "held")
    free = _overlay(workspace, "free")
    fresh = _overlay(workspace, "being-made", lock=False)
    dead = _overlay(workspace, "maker-died", lock=False)
    old = time.time() - overlays.UNLOCKED_STALE_S - 60
    os.utime(dead, (old, old))
    outside = tmp_path / "outside"
    outside.mkdir()
    (overlays.overlays_dir(workspace) / "link").symlink_to(outside, target_is_directory=True)
    fd = os.open(held / overlays.LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert overlays.sweep(workspace) == 2
    finally:
        os.close(fd)
    assert held.is_dir() and fresh.is_dir()  # a live worker's, and one being made
    assert not free.exists() and not dead.exists()  # no live holder; left without its lock
    assert outside.is_dir()  # a link is not followed
