"""The wheelhouse: a pip build keeps every file it installed by sha256, and a rebuild from the
lock installs from it with the package index unreachable, giving the identical `pip freeze`."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from jupyter_mlws.environments.locks import parse_lock
from jupyter_mlws.environments.venv_builder import venv_python
from jupyter_mlws.environments.wheelhouse import file_sha256, lock_hashes
from jupyter_mlws.errors import BuildError


def _pip_freeze(path: str) -> list[str]:
    out = subprocess.run([str(venv_python(Path(path))), "-m", "pip", "freeze"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(ln for ln in out.splitlines() if ln.strip())


def _dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_pip_rebuild_from_the_lock_needs_no_index(ws: Workspace,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_BUILD_TOOL", "pip")
    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    env = ws.environments.create("wheels", pip_requirements=["six>=1", "idna>=2"])  # own hash
    venvs = ws.environments.builder("venv")
    venvs.remove(env.definition())  # type: ignore[attr-defined]
    first = ws.environments.build("wheels", builder="venv")
    assert not first.from_lock
    before = _pip_freeze(first.image)
    lock = parse_lock(ws.environments.lock("wheels"))
    assert lock.require_hashes and {"six", "idna"} <= set(lock.pins())
    kept = venvs.wheelhouse.files_for(lock.requirements)  # type: ignore[attr-defined]
    assert kept is not None and len(kept) == len(lock.requirements)
    per_line = lock_hashes(lock.requirements)
    assert per_line is not None
    assert [file_sha256(p) for p in kept] == [h[0] for h in per_line]  # keyed by their bytes

    # (a dry run: a real `env prune` would remove other workspaces' images on this engine)
    pruned = CliRunner().invoke(main, ["env", "prune", "--dry-run", "--wheels"])
    assert pruned.exit_code == 0, pruned.output
    assert "Would remove" in pruned.output and "file(s)" in pruned.output
    assert venvs.wheelhouse.files_for(lock.requirements) == kept  # type: ignore[attr-defined]
    assert venvs.remove(env.definition())  # type: ignore[attr-defined]

    dead = f"http://127.0.0.1:{_dead_port()}/simple"
    for var, value in (("PIP_INDEX_URL", dead), ("PIP_EXTRA_INDEX_URL", dead),
                       ("PIP_FIND_LINKS", ""), ("PIP_RETRIES", "0"), ("PIP_TIMEOUT", "3")):
        monkeypatch.setenv(var, value)
    lines: list[str] = []
    again = ws.environments.build("wheels", builder="venv", log=lines.append)
    assert again.from_lock and not again.cached
    step = next(ln for ln in lines if ln.startswith("==> [mlws venv] unpack"))
    assert f"the lock's {len(kept)} wheel(s) from the wheelhouse" in step and "no index" in step
    assert not any(ln.startswith("==> [mlws venv] pip ") for ln in lines)  # pip not run
    assert _pip_freeze(again.image) == before
    assert ws.environments.lock("wheels") == lock.text  # the same lock, not re-resolved

    # without the wheelhouse the same rebuild needs the (dead) index: it fails, and the venv
    # just built stays
    files, size = ws.environments.clear_wheelhouse()  # what `env prune --wheels` does
    assert files >= len(kept) and size > 0
    assert venvs.wheelhouse.files_for(lock.requirements) is None  # type: ignore[attr-defined]
    with pytest.raises(BuildError):
        ws.environments.build("wheels", builder="venv", no_cache=True)
    kept_venv = ws.environments.lookup(env, "venv")
    assert kept_venv is not None and kept_venv.built_at == again.built_at


def test_a_damaged_wheelhouse_file_is_dropped_and_downloaded_again(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_BUILD_TOOL", "pip")
    env = ws.environments.create("damaged", pip_requirements=["six>=1.1"])  # own hash
    venvs = ws.environments.builder("venv")
    venvs.remove(env.definition())  # type: ignore[attr-defined]
    first = ws.environments.build("damaged", builder="venv")
    lock = parse_lock(ws.environments.lock("damaged"))
    kept = venvs.wheelhouse.files_for(lock.requirements)  # type: ignore[attr-defined]
    assert kept is not None and len(kept) == 1
    good = kept[0].read_bytes()
    kept[0].write_bytes(good[:-10] + b"0123456789")  # a changed byte on disk
    lines: list[str] = []
    again = ws.environments.build("damaged", builder="venv", no_cache=True, log=lines.append)
    assert again.from_lock
    assert any("was damaged" in ln and kept[0].name in ln for ln in lines)
    assert not any("from the wheelhouse" in ln for ln in lines)
    assert _pip_freeze(again.image) == _pip_freeze(first.image)
    fresh = venvs.wheelhouse.files_for(lock.requirements, verify=True)  # type: ignore[attr-defined]
    assert fresh is not None and fresh[0].read_bytes() == good
