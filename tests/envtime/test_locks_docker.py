"""Locks with the Docker builder: an image pruned and rebuilt installs the identical lock."""

from __future__ import annotations

import os
from typing import Any

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.environments.locks import parse_lock
from jupyter_mlws.environments.uv_tool import find_uv
from jupyter_mlws.errors import LockInstallError
from tests.helpers import drop_cached_image

pytestmark = pytest.mark.docker


@pytest.fixture
def dws(ws: Workspace, docker_client: Any) -> Workspace:
    docker_client.images.get("mlws/base-python:3.11-bookworm")  # made by scripts/test.sh
    return ws


def _ls(docker_client: Any, image: str) -> list[str]:
    out = docker_client.containers.run(image, ["/bin/sh", "-c", "ls /opt/mlws"], remove=True,
                                       network_disabled=True)
    return [f"/opt/mlws/{n}" for n in out.decode().split()]


def _freeze(docker_client: Any, image: str) -> list[str]:
    out = docker_client.containers.run(image, ["/opt/mlws/venv/bin/python", "-m", "pip", "freeze",
                                               "--local"], remove=True, network_disabled=True)
    return sorted(ln for ln in out.decode().splitlines() if ln.strip())


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_unpinned_image_pruned_and_rebuilt_installs_the_identical_lock(
    dws: Workspace, docker_client: Any, tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLWS_BUILD_TOOL", tool)
    if tool == "uv" and find_uv() is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("uv is not installed")
    env = dws.environments.create("dunpinned", image="python:3.11", pip_requirements=["six"])
    drop_cached_image(dws, env)
    first = dws.environments.build("dunpinned")
    assert ("uv pip compile" in first.log) == (tool == "uv")
    lock = dws.environments.lock("dunpinned")
    assert f"by {tool}" in lock
    assert "six" in parse_lock(lock).pins() and parse_lock(lock).require_hashes
    before = _freeze(docker_client, first.image)
    assert any(ln.startswith("six==") for ln in before)
    # what `mlws env prune` does to it (prune itself would touch other workspaces' images here)
    dws.environments._docker().remove(first.image_id, force=True)
    assert dws.environments.lookup(env) is None
    lines: list[str] = []
    again = dws.environments.build("dunpinned", log=lines.append)
    assert again.from_lock and again.image_id != first.image_id
    assert any("--no-deps --require-hashes" in ln for ln in lines)
    # the lock's files came from this machine's wheelhouse (test_docker_wheelhouse.py)
    assert any(ln.startswith("Installing the lock from the wheelhouse") for ln in lines)
    assert not any(ln.startswith("mlws-wheelhouse:") for ln in lines)
    if tool == "uv":
        assert all("/opt/mlws/mlws-uv" not in p for p in _ls(docker_client, again.image))
    assert _freeze(docker_client, again.image) == before
    assert dws.environments.lock("dunpinned") == lock
    dws.environments._docker().remove(again.image_id, force=True)


def test_a_missing_pinned_version_keeps_the_old_image(dws: Workspace) -> None:
    env = dws.environments.create("dyanked", image="python:3.11", pip_requirements=["six"])
    drop_cached_image(dws, env)
    first = dws.environments.build("dyanked")
    dws.environments.set_lock(env.env_hash, "3.11", "six==99.0.0\n", builder="docker")
    with pytest.raises(LockInstallError) as err:
        dws.environments.build("dyanked", no_cache=True)
    assert err.value.details["package"] == "six"
    kept = dws.environments.lookup(env)
    assert kept is not None and kept.image_id == first.image_id
    dws.environments._docker().remove(first.image_id, force=True)
