"""Locks with the venv builder: the first build records the lock, later builds install it exactly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.environments.locks import parse_lock
from jupyter_mlws.environments.uv_tool import find_uv
from jupyter_mlws.environments.venv_builder import venv_python
from jupyter_mlws.errors import LockInstallError, NoLockError

_LIST = ("import importlib.metadata as m; print('\\n'.join(sorted(d.metadata['Name'].lower() + '=='"
         " + d.version for d in m.distributions() if d.metadata['Name'].lower() not in "
         "('pip', 'setuptools', 'wheel'))))")


def _freeze(path: str) -> list[str]:
    """``pip freeze`` of a venv (uv's venvs have no pip, so read the installed metadata)."""
    out = subprocess.run([str(venv_python(Path(path))), "-c", _LIST],
                         capture_output=True, text=True, check=True).stdout
    return sorted(ln for ln in out.splitlines() if ln.strip())


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_unpinned_venv_pruned_and_rebuilt_installs_the_identical_lock(
    ws: Workspace, tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLWS_BUILD_TOOL", tool)
    if tool == "uv" and find_uv() is None:
        _missing("uv (pip install 'jupyter-mlws[uv]')")
    env = ws.environments.create("unpinned", pip_requirements=["six", "idna"])
    ws.environments.builder("venv").remove(env.definition())  # type: ignore[attr-defined]
    with pytest.raises(NoLockError):
        ws.environments.lock("unpinned")
    lines: list[str] = []
    first = ws.environments.build("unpinned", builder="venv", log=lines.append)
    assert not first.from_lock
    assert any("[mlws venv] resolve (uv pip compile)" in ln for ln in lines) == (tool == "uv")
    lock = ws.environments.lock("unpinned")
    parsed = parse_lock(lock)
    assert {"six", "idna"} <= set(parsed.pins())
    assert parsed.require_hashes  # the index served hashes for both
    before = _freeze(first.image)
    assert ws.environments.builder("venv").remove(env.definition())  # type: ignore[attr-defined]
    assert ws.environments.lookup(env, "venv") is None
    lines.clear()
    again = ws.environments.build("unpinned", builder="venv", log=lines.append)
    assert again.from_lock and not again.cached
    if tool == "uv":
        assert any("--require-hashes" in ln and "--no-deps" in ln for ln in lines)
    else:  # pip's builder unpacks the lock's kept wheels itself (checked by sha256)
        assert any("unpack the lock's 2 wheel(s) from the wheelhouse" in ln for ln in lines)
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


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed")
    pytest.skip(f"{what} is not installed")


def _host_series() -> str:
    import sys

    return f"{sys.version_info[0]}.{sys.version_info[1]}"
