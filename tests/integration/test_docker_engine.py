"""The output of a fast container is never lost (``docker_engine.run_to_end``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jupyter_mlws.assets.environment import DEFAULT_BASE_IMAGE
from jupyter_mlws.docker_engine import run_to_end

pytestmark = pytest.mark.docker

BIG = 5_000_000  # bytes, more than socket buffers hold: `run(remove=True)` has truncated such logs


@pytest.fixture(scope="module")
def image(docker_client: Any) -> str:
    docker_client.images.get(DEFAULT_BASE_IMAGE)  # made by `mlws image bootstrap`
    return DEFAULT_BASE_IMAGE


def test_twenty_fast_containers_each_give_their_output(docker_client: Any, image: str) -> None:
    for i in range(20):
        code, out = run_to_end(docker_client, image, ["echo", f"marker-{i}"],
                               network_disabled=True)
        assert (code, out) == (0, f"marker-{i}\n".encode())


def test_a_big_fast_output_arrives_whole(docker_client: Any, image: str) -> None:
    script = f"head -c {BIG} /dev/zero | tr '\\0' a; echo; echo END"
    for _ in range(6):
        code, out = run_to_end(docker_client, image, ["sh", "-c", script],
                               network_disabled=True)
        assert code == 0 and len(out) == BIG + 5 and out.endswith(b"\nEND\n")


def test_exit_code_stderr_and_no_container_left(docker_client: Any, image: str) -> None:
    label = {"org.mlws.test-run": uuid.uuid4().hex}
    code, out = run_to_end(docker_client, image, ["sh", "-c", "echo out; echo err >&2; exit 3"],
                           stderr=True, labels=label)
    assert code == 3 and b"out" in out and b"err" in out
    left = docker_client.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in label.items()]})
    assert left == []
