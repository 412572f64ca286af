"""Fixtures for the environments-over-time tests (locks, patched bases, rebuilds)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A live Docker engine; fails in CI (``CI`` set), else skips, without one."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        message = f"Docker engine not reachable ({exc}); start it with `bash scripts/docker-up.sh`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield client
    client.close()
