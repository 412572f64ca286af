"""The one place that makes Docker clients and says "the engine is down" the same way for every
caller (builders, the docker compute target, base-image bootstrap, the CLI and REST)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from jupyter_mlws.errors import DockerUnavailableError

#: Texts by which docker-py and requests say the engine cannot be reached.
_DOWN_MARKERS = ("Error while fetching server API version", "Cannot connect", "Connection",
                 "connection refused", "No such file or directory")


def is_engine_down(exc: BaseException) -> bool:
    """Whether ``exc`` means "the Docker engine cannot be reached" (not an API error)."""
    import docker
    import requests

    if isinstance(exc, DockerUnavailableError):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        return True
    if isinstance(exc, docker.errors.APIError):
        return False
    if isinstance(exc, docker.errors.DockerException):
        text = str(exc)
        return any(m in text for m in _DOWN_MARKERS)
    return "Connection" in type(exc).__name__


def unavailable(detail: object) -> DockerUnavailableError:
    """The typed error for an engine that cannot be reached, with ``detail`` from the client."""
    return DockerUnavailableError(f"The Docker engine cannot be reached ({detail}).")


@contextlib.contextmanager
def engine_calls() -> Iterator[None]:
    """Turn "cannot reach the engine" raised inside the block into DockerUnavailableError."""
    try:
        yield
    except DockerUnavailableError:
        raise
    except Exception as exc:
        if is_engine_down(exc):
            raise unavailable(exc) from None
        raise


def docker_client(*, ping: bool = True) -> Any:
    """A client of the local Docker engine, or :class:`DockerUnavailableError`."""
    import docker

    try:
        client = docker.from_env()
        if ping:
            client.ping()
    except Exception as exc:  # docker-py raises several kinds when the engine is down
        raise unavailable(exc) from None
    return client


def run_to_end(
    client: Any, image: str, command: list[str], *, stderr: bool = False,
    timeout: float | None = None, **create: Any,
) -> tuple[int, bytes]:
    """Run a container to its end: its exit code and its output (stdout; with ``stderr``, both).

    The output is read from the exited container *before* it is removed, so none is lost however
    fast the container exits (``containers.run(..., remove=True)`` reads a log stream after the
    removal and can return nothing). ``create`` goes to ``containers.create``.
    """
    import docker

    with engine_calls():
        container = client.containers.create(image, command, **create)
        try:
            container.start()
            status = int(container.wait(timeout=timeout).get("StatusCode", -1))
            out = container.logs(stdout=True, stderr=stderr)
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
    return status, bytes(out)
