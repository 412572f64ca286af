"""Locks with the venv builder: the first build records the lock, later builds install it exactly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.environments.locks import parse_lock
from jupyter_mlws.environments.venv_builder import venv_python
from jupyter_mlws.errors import LockInstallError, NoLockError


def _freeze(path: str) -> list[str]:
    out = subprocess.run([str(venv_python(Path(path))), "-m", "pip", "freeze"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(ln for ln in out.splitlines() if ln.strip())


def test_unpinned_venv_pruned_and_rebuilt_installs_the_identical_lock(ws: Workspace) -> None:
    env = ws.environments.create("unpinned", pip_requirements=["six", "idna"])
    with pytest.raises(NoLockError):
        ws.environments.lock("unpinned")
    first = ws.environments.build("unpinned", builder="venv")
    assert not first.from_lock
    lock = ws.environments.lock("unpinned")
    parsed = parse_lock(lock)
    assert {"six", "idna"} <= set(parsed.pins())
    assert parsed.require_hashes  # the index served hashes for both
    before = _freeze(first.image)
    assert ws.environments.builder("venv").remove(env.definition())  # type: ignore[attr-defined]
    assert ws.environments.lookup(env, "venv") is None
    lines: list[str] = []
    again = ws.environments.build("unpinned", builder="venv", log=lines.append)
    assert again.from_lock and not again.cached
    assert any("--require-hashes" in ln and "--no-deps" in ln for ln in lines)
    assert _freeze(again.image) == before
    assert ws.environments.lock("unpinned") == lock  # kept, not re-resolved


def test_recorded_lock_wins_over_the_newest_release(ws: Workspace) -> None:
    env = ws.environments.create("older", pip_requirements=["six"])
    ws.environments.set_lock(env.env_hash, _host_series(), "six==1.16.0\n", builder="venv")
    result = ws.environments.build("older", builder="venv")
    assert result.from_lock
    assert _freeze(result.image) == ["six==1.16.0"]


def test_a_missing_pinned_version_fails_clearly_and_keeps_the_old_venv(ws: Workspace) -> None:
    env = ws.environments.create("yanked", pip_requirements=["six"])
    first = ws.environments.build("yanked", builder="venv")
    ws.environments.set_lock(env.env_hash, _host_series(), "six==99.0.0\n", builder="venv")
    with pytest.raises(LockInstallError) as err:
        ws.environments.build("yanked", builder="venv", no_cache=True)
    assert err.value.details["package"] == "six" and err.value.details["version"] == "99.0.0"
    assert "six==99.0.0" in str(err.value) and "--update six" in str(err.value.hint)
    kept = ws.environments.lookup(env, "venv")
    assert kept is not None and kept.built_at == first.built_at
    assert _freeze(kept.image) == _freeze(first.image)


def _host_series() -> str:
    import sys

    return f"{sys.version_info[0]}.{sys.version_info[1]}"
