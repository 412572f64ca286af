"""A second workspace using an environment through a registry gets the same lock."""

from __future__ import annotations

from pathlib import Path

from jupyter_mlws import Workspace
from jupyter_mlws.assets.base import parse_registry_ref
from jupyter_mlws.environments.locks import parse_lock


def test_a_second_workspace_gets_the_lock_through_a_registry(tmp_path: Path) -> None:
    ws_a = Workspace.init(tmp_path / "a")
    ws_b = Workspace.init(tmp_path / "b")
    try:
        ws_a.registries.create("team", tmp_path / "shared" / "team")
        env = ws_a.environments.create("shared-env", pip_requirements=["idna"])
        ws_a.environments.build("shared-env", builder="venv")
        lock = ws_a.environments.lock("shared-env")
        entry = ws_a.registries.share("environment", "shared-env:1", "team")
        assert lock in entry.locks.values()
        ref = parse_registry_ref("azureml://registries/team/environments/shared-env/versions/1")
        assert ref is not None
        used = ws_b.registries.use(ref)
        assert used.env_hash == env.env_hash  # type: ignore[attr-defined]
        assert ws_b.environments.lock(used.name, used.version) == lock
        # built there (the venv folder is per machine; make it again): installs that lock
        venvs = ws_b.environments.builder("venv")
        venvs.remove(ws_b.environments.get(used.name, used.version).definition())  # type: ignore[attr-defined]
        again = ws_b.environments.build(used.name, used.version, builder="venv")
        assert again.from_lock
        assert sorted(again.resolved_packages) == sorted(
            ln.split(" ")[0] for ln in parse_lock(lock).requirements)
    finally:
        ws_a.close()
        ws_b.close()
