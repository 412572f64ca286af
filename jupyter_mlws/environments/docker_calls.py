"""The engine calls of an image build: stream a build, pull, push, list packages in a container.

Every call runs inside :func:`jupyter_mlws.docker_engine.engine_calls`, so an engine that cannot
be reached is a :class:`~jupyter_mlws.errors.DockerUnavailableError`, never a client traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import docker
import docker.errors
from docker.utils import parse_repository_tag

from jupyter_mlws.docker_engine import engine_calls, run_to_end
from jupyter_mlws.environments.builds import tail
from jupyter_mlws.environments.docker_images import FREEZE_SCRIPT, TAG, parse_freeze
from jupyter_mlws.environments.dockerfile import LOCK_LINES_FILE, MESSAGE_PREFIX, MLWS_DIR
from jupyter_mlws.errors import BuildError

Log = Callable[[str], None]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_COMMAND = re.compile(r"^The command '.*' returned", re.DOTALL)
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def inspect(client: docker.DockerClient, ref: str) -> dict[str, Any] | None:
    """``docker image inspect ref``, or ``None`` when there is no such image."""
    with engine_calls():
        try:
            return dict(client.api.inspect_image(ref))
        except docker.errors.NotFound:
            return None


def run_build(
    client: docker.DockerClient,
    environment: str,
    log: Log,
    *,
    labels: dict[str, str] | None,
    timeout: int | None = None,
    **kwargs: Any,
) -> str:
    """Run one engine build, streaming its log; the whole log, or :class:`BuildError`.

    ``kwargs`` go to the engine's build (``nocache``, ``tag``, ``path`` or ``fileobj``...).
    """
    lines: list[str] = []
    pending = ""
    step: tuple[str, str, str] | None = None
    error: str | None = None

    def emit(line: str) -> None:
        nonlocal step
        line = _ANSI.sub("", line)
        lines.append(line)
        m = _STEP.match(line)
        if m:
            step = (m.group(1), m.group(2), m.group(3))
            log(f"==> [mlws {m.group(1)}/{m.group(2)}] {m.group(3)}")
        else:
            log(line)

    with engine_calls():
        try:
            stream: Iterable[dict[str, Any]] = client.api.build(
                rm=True, forcerm=True, pull=False, decode=True, labels=labels, timeout=timeout,
                **kwargs,
            )
            for chunk in stream:
                if "stream" in chunk:
                    pending += str(chunk["stream"])
                    while "\n" in pending:
                        line, pending = pending.split("\n", 1)
                        emit(line.rstrip("\r"))
                elif "error" in chunk or "errorDetail" in chunk:
                    detail = chunk.get("errorDetail") or {}
                    error = str(chunk.get("error") or detail.get("message") or "build failed")
                elif "status" in chunk and "progress" not in chunk:
                    emit(f"{chunk.get('id', '')} {chunk['status']}".strip())
        except docker.errors.APIError as exc:
            error = str(exc.explanation or exc)
    if pending:
        emit(pending)
    if error:
        emit(error)
    text = "\n".join(lines)
    if error:
        raise build_error(environment, error, step, text)
    return text


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_error(
    environment: str, error: str, step: tuple[str, str, str] | None, text: str
) -> BuildError:
    """The typed error of a failed build: the step, the most telling log line, a hint."""
    own = [ln[len(MESSAGE_PREFIX) :] for ln in text.splitlines() if ln.startswith(MESSAGE_PREFIX)]
    where = f" at step {step[0]}/{step[1]} ({_short(step[2])})" if step else ""
    errors = [ln for ln in text.splitlines() if ln.startswith(("ERROR:", "E: ", "error:"))]
    if own:
        reason = own[-1]
    elif errors:
        reason = _short(errors[-1], 300)
    else:
        reason = _short(_COMMAND.sub("The command returned", error.strip()), 300)
    hint = None
    low = text.lower()
    if "no matching distribution" in low or "could not find a version" in low:
        hint = "Check the package names and versions (pip's error is in the log)."
    elif "pull access denied" in low or "no such host" in low or "not found" in error:
        hint = (
            "The base image could not be found or pulled: pull or load it first, or use a "
            "base made by `mlws image bootstrap`."
        )
    return BuildError(
        f"Building the image of {environment} failed{where}: {reason}",
        step=step[2] if step else None,
        log_tail=tail(text),
        hint=hint,
    )


def list_images(client: docker.DockerClient, repository: str) -> list[dict[str, Any]]:
    """Every image whose name starts with ``repository``: id, tags, size, created, labels."""
    with engine_calls():
        rows = client.api.images(filters={"reference": f"{repository}*"})
    return [{"id": row["Id"],
             "tags": [t for t in row.get("RepoTags") or [] if t.startswith(repository)],
             "size": int(row.get("Size") or 0), "created": int(row.get("Created") or 0),
             "labels": dict(row.get("Labels") or {})} for row in rows]


def pull(client: docker.DockerClient, ref: str, log: Log | None = None) -> str | None:
    """Pull ``ref``; the error text when it fails, else ``None``."""
    repo, tag = parse_repository_tag(ref)
    if tag is None and "@" not in repo:
        tag = TAG
    with engine_calls():
        try:
            for chunk in client.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    return str(chunk["error"])
                if log is not None and "status" in chunk and "progress" not in chunk:
                    log(f"{chunk.get('id', '')} {chunk['status']}".strip())
        except docker.errors.APIError as exc:
            return str(exc.explanation or exc)
    return None


def push(client: docker.DockerClient, image_id: str, remote: str, log: Log) -> str | None:
    """Tag ``image_id`` as ``remote:latest`` and push it; its digest, or ``None`` when it failed."""
    digest = None
    try:
        with engine_calls():
            client.api.tag(image_id, remote, TAG, force=True)
            for chunk in client.api.push(remote, tag=TAG, stream=True, decode=True):
                if "error" in chunk:
                    log(f"Could not push {remote}:{TAG}: {chunk['error']}")
                    return None
                aux = chunk.get("aux") or {}
                if aux.get("Digest"):
                    digest = f"{remote}@{aux['Digest']}"
        log(f"Pushed {remote}:{TAG}")
    except docker.errors.APIError as exc:
        log(f"Could not push {remote}:{TAG}: {exc.explanation or exc}")
    return digest


def freeze(client: docker.DockerClient, ref: str, log: Log, *, quiet: bool = False) -> list[str]:
    """``pip freeze`` (and ``conda list --export``) inside a short-lived container.

    The output is read before the container is removed (:func:`run_to_end`), so a fast container
    never gives an empty list by accident.
    """
    try:
        _code, out = run_to_end(
            client, ref, [FREEZE_SCRIPT], entrypoint=["/bin/sh", "-c"], network_disabled=True
        )
    except docker.errors.DockerException as exc:
        if not quiet:
            log(f"Could not list the installed packages: {exc}")
        return []
    return parse_freeze(out.decode("utf-8", "replace"))


def read_lock_lines(client: docker.DockerClient, ref: str) -> list[str] | None:
    """The lock lines an image's pip step kept in it (``None``: it has none)."""
    path = f"{MLWS_DIR}/{LOCK_LINES_FILE}"
    try:
        code, out = run_to_end(client, ref, [f"cat {path} 2>/dev/null || exit 3"],
                               entrypoint=["/bin/sh", "-c"], network_disabled=True)
    except docker.errors.DockerException:
        return None
    if code != 0:
        return None
    return [ln.strip() for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]


def remove_replaced(client: docker.DockerClient, image_id: str, log: Log) -> None:
    """Remove an image a rebuild untagged, unless something still uses or names it."""
    with engine_calls():
        try:
            client.api.remove_image(image_id, force=False)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            log(f"Kept the replaced image {image_id[:19]} ({exc.explanation or exc}).")
            return
    log(f"Removed the replaced image {image_id[:19]}.")


def quiet_debootstrap(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` for debootstrap's output without its per-package lines, plus a count."""
    count = 0

    def emit(line: str) -> None:
        nonlocal count
        if line.startswith(("I: Retrieving ", "I: Validating ", "I: Unpacking ",
                            "I: Configuring ", "I: Extracting ")):
            count += 1
            if count % 100 == 0:
                log(f"debootstrap: {count} package steps done")
            return
        log(line)

    return emit
