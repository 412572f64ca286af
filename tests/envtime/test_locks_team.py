"""Locks in a team workspace: recorded in PostgreSQL by one machine's first build, read back and
installed exactly by another machine's build (servers from scripts/team-servers.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.environments.locks import parse_lock
from jupyter_mlws.environments.venv_builder import venv_python
from tests.team.conftest import Team, team, team_servers  # noqa: F401 - the fixtures


def _pip_freeze(path: str) -> list[str]:
    out = subprocess.run([str(venv_python(Path(path))), "-m", "pip", "freeze"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(ln for ln in out.splitlines() if ln.strip())


def test_a_lock_recorded_on_one_machine_is_installed_on_another(
        team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("MLWS_BUILD_TOOL", "pip")
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    env = a.environments.create("shared", pip_requirements=["six", "idna"])
    a.environments.builder("venv").remove(env.definition())  # type: ignore[attr-defined]
    first = a.environments.build("shared", builder="venv")
    assert not first.from_lock
    lock = a.environments.lock("shared")
    assert parse_lock(lock).require_hashes
    before = _pip_freeze(first.image)
    a.close()

    # machine B: its own envs folder and cache (no venv, no wheelhouse of A's)
    monkeypatch.setenv("MLWS_ENVS_DIR", str(tmp_path / "B-machine" / "envs"))
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    try:
        assert b.store.engine.dialect.name == "postgresql"  # type: ignore[attr-defined]
        assert b.environments.lock("shared") == lock  # read back from PostgreSQL
        assert b.environments.lookup(b.environments.get("shared"), "venv") is None
        lines: list[str] = []
        again = b.environments.build("shared", builder="venv", log=lines.append)
        assert again.from_lock and not again.cached
        assert any("Installing the recorded lock" in ln for ln in lines)
        assert _pip_freeze(again.image) == before
        assert b.environments.lock("shared") == lock  # not re-recorded
    finally:
        b.close()
