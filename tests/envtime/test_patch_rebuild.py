"""Patched bases: a new immutable tag, the floating tag moved, dependants found and rebuilt from
their locks (identical Python packages, only the base changes).

The base patched is a throwaway copy of the default offline base (other builds on this machine
keep using the real one while the test runs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from jupyter_mlws.environments.patching import list_bases, patch_base

pytestmark = pytest.mark.docker

REAL_BASE = "mlws/base-python:3.11-bookworm"


@pytest.fixture
def base_copy(docker_client: Any) -> Iterator[str]:
    repository = f"mlws/base-envtime-{uuid.uuid4().hex[:8]}"
    docker_client.images.get(REAL_BASE).tag(repository, "3.11-bookworm")
    yield f"{repository}:3.11-bookworm"
    for image in docker_client.images.list(name=repository):
        for tag in image.tags:
            if tag.startswith(repository + ":"):
                docker_client.images.remove(tag, force=True)


def _freeze(docker_client: Any, image: str) -> list[str]:
    out = docker_client.containers.run(image, ["/opt/mlws/venv/bin/python", "-m", "pip", "freeze",
                                               "--local"], remove=True, network_disabled=True)
    return sorted(ln for ln in out.decode().splitlines() if ln.strip())


def test_patch_outdated_and_rebuild_from_the_lock(ws: Workspace, docker_client: Any,
                                                   base_copy: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    repository, _, tag = base_copy.rpartition(":")
    envs = [ws.environments.create(f"dep{i}", image=base_copy, pip_requirements=[pkg])
            for i, pkg in enumerate(["six", "idna"])]
    first = {e.name: ws.environments.build(e.name) for e in envs}
    frozen = {n: _freeze(docker_client, r.image) for n, r in first.items()}
    old_base = docker_client.images.get(base_copy).id
    assert ws.environments.outdated() == []

    lines: list[str] = []
    patched = patch_base(docker_client, base_copy, log=lines.append, always=True)
    assert patched.moved and patched.tag and patched.tag.startswith(f"{base_copy}-p")
    assert docker_client.images.get(base_copy).id == patched.image_id != old_base
    assert docker_client.images.get(patched.tag).id == patched.image_id
    assert docker_client.images.get(f"{base_copy}-orig").id == old_base
    row = next(r for r in list_bases(docker_client) if r["id"] == patched.image_id)
    assert row["updated"] == patched.updated and row["patched_from"] == old_base
    again = patch_base(docker_client, base_copy, always=True, today="20991231")
    assert again.tag == f"{base_copy}-p20991231" and again.previous_id == patched.image_id
    assert docker_client.images.get(f"{base_copy}-orig").id == old_base  # kept, not moved

    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    shown = CliRunner().invoke(main, ["env", "outdated"])
    assert shown.exit_code == 0, shown.output
    outdated = ws.environments.outdated()
    assert sorted(o["environment"] for o in outdated) == ["dep0:1", "dep1:1"]
    assert all(o["built_on"] == old_base and o["base_now"] == again.image_id for o in outdated)
    assert "dep0:1" in shown.output and "dep1:1" in shown.output
    note = ws.describe(envs[0])["docker_build"]["base_changed"]
    assert note.startswith("base patched on ") and "mlws env rebuild dep0:1" in note

    done = ws.environments.rebuild_outdated()
    assert sorted(d["environment"] for d in done) == ["dep0:1", "dep1:1"]
    assert all(d["rebuilt"] and d["from_lock"] and d["base_image_id"] == again.image_id
               for d in done)
    for env in envs:
        now = ws.environments.lookup(env)
        assert now is not None and now.image_id != first[env.name].image_id
        assert _freeze(docker_client, now.image) == frozen[env.name]
        history = ws.environments.build_history(env)
        assert [h["image_id"] for h in history][-2:] == [first[env.name].image_id, now.image_id]
    assert ws.environments.outdated() == []
    assert "base_changed" not in ws.describe(envs[0])["docker_build"]
    for env in envs:
        ws.builder("docker").remove(ws.environments.lookup(env).image_id, force=True)
