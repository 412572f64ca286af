"""Patched bases: Debian security updates applied to an offline base as a new immutable tag.

``mlws image patch [BASE]`` runs ``apt-get upgrade`` in a container of the base (its suite's
``-updates`` and ``-security`` sources added, their addresses read from this machine's apt
configuration, never written here), commits the container as ``<tag>-pYYYYMMDD`` (``.2``, ``.3``
on a second patch the same day), and moves the floating tag (``mlws/base-python:3.11-bookworm``)
to it. The first patch also gives the unpatched image an immutable tag, ``<tag>-orig``, so every
image a base tag ever meant stays addressable. Labels on the patched image say when, from which
image, and how many packages were upgraded.

Environment images keep the base image id they were built on (a label): those whose id is no
longer their base tag's current id are *outdated* (see ``ws.environments.outdated()``).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import docker
import docker.errors

from jupyter_mlws.docker_engine import engine_calls, run_to_end
from jupyter_mlws.environments.bootstrap import BASE_IMAGES, DEFAULT_BASE_IMAGE, LABEL_BASE
from jupyter_mlws.environments.machine import apt_sources, debian_mirror
from jupyter_mlws.errors import BuildError, NotFoundError

__all__ = ["LABEL_PATCHED", "PatchResult", "list_bases", "patch_base"]

LABEL_PATCHED = "org.mlws.patched"
LABEL_PATCHED_FROM = "org.mlws.patched-from"
LABEL_PATCH_UPDATES = "org.mlws.patch-updates"
LABEL_PATCH_PACKAGES = "org.mlws.patch-packages"
ORIGINAL_SUFFIX = "-orig"
_UPGRADED = re.compile(r"^(\d+) upgraded, (\d+) newly installed", re.M)
_INST = re.compile(r"^Inst (\S+) \[(\S+)\] \((\S+)", re.M)

Log = Callable[[str], None]


@dataclass
class PatchResult:
    """What one ``image patch`` did."""

    base: str
    previous_id: str
    image_id: str
    tag: str | None
    updated: int
    packages: list[str]
    moved: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _security_sources(suite: str) -> list[str]:
    """``deb`` lines for ``suite``, ``suite-updates`` and ``suite-security``, from the mirrors this
    machine's apt uses (the security archive: the source of any ``*-security`` suite)."""
    main = debian_mirror(suite)
    security = next((s.uri for s in apt_sources() if any(x.endswith("-security")
                                                         for x in s.suites)), None)
    lines = [f"deb {main} {suite} main", f"deb {main} {suite}-updates main"]
    if security:
        lines.append(f"deb {security} {suite}-security main")
    return lines


def _script(suite: str) -> str:
    sources = "\n".join(_security_sources(suite))
    return (
        "set -e; export DEBIAN_FRONTEND=noninteractive; "
        f"printf '%s\\n' {shlex.quote(sources)} > /etc/apt/sources.list; "
        "apt-get update -q >/dev/null; "
        "apt-get -s -o Debug::NoLocking=1 upgrade | grep '^Inst ' || true; "
        "apt-get -y -q -o Dpkg::Options::=--force-confold upgrade; "
        "apt-get clean; rm -rf /var/lib/apt/lists/*"
    )


def _next_tag(client: docker.DockerClient, repository: str, tag: str, day: str) -> str:
    base = f"{tag}-p{day}"
    existing = set()
    for image in client.images.list(name=repository):
        existing |= {t.split(":", 1)[1] for t in image.tags if ":" in t}
    if base not in existing:
        return base
    n = 2
    while f"{base}.{n}" in existing:
        n += 1
    return f"{base}.{n}"


def patch_base(client: docker.DockerClient, base: str = DEFAULT_BASE_IMAGE, *, log: Log = print,
               always: bool = False, today: str | None = None) -> PatchResult:
    """Apply the current Debian updates to the offline base ``base`` (see the module docstring).

    With nothing to upgrade, no tag is made and nothing moves (``always`` makes one anyway).

    Raises:
        NotFoundError: ``base`` is not in the engine.
        BuildError: it is not an offline base, or apt failed.
    """
    repository, _, tag = base.rpartition(":")
    with engine_calls():
        try:
            image = client.images.get(base)
        except docker.errors.ImageNotFound as exc:
            raise NotFoundError(f"The base image {base} is not in the Docker engine.",
                                hint="Make it first: `mlws image bootstrap`.") from exc
        suite = image.labels.get("org.mlws.suite")
        if not suite or LABEL_BASE not in image.labels:
            raise BuildError(f"{base} is not an offline base made by `mlws image bootstrap`.",
                             step="patch", hint=f"Known bases: {', '.join(BASE_IMAGES)}.")
        log(f"{base}: applying Debian {suite} updates in a container of {image.id[:19]} ...")
        container = client.containers.create(image.id, ["/bin/sh", "-c", _script(suite)],
                                             entrypoint=[], user="root")
        try:
            container.start()
            code = container.wait().get("StatusCode", 1)
            out = container.logs().decode("utf-8", "replace")
            if code != 0:
                raise BuildError(f"apt-get upgrade in {base} failed (exit code {code}).",
                                 step="apt-get upgrade", log_tail="\n".join(out.splitlines()[-30:]),
                                 hint="Check that the Debian mirror apt uses is reachable.")
            packages = [f"{m.group(1)} {m.group(2)} -> {m.group(3)}" for m in _INST.finditer(out)]
            m = _UPGRADED.search(out)
            updated = int(m.group(1)) + int(m.group(2)) if m else len(packages)
            for line in packages:
                log(f"  {line}")
            if updated == 0 and not always:
                log(f"{base}: already up to date; nothing tagged")
                return PatchResult(base, image.id, image.id, None, 0, [], False)
            return _commit(client, container, image, repository, tag, updated, packages, log,
                           today)
        finally:
            container.remove(force=True)


def _commit(client: docker.DockerClient, container: Any, image: Any, repository: str, tag: str,
            updated: int, packages: list[str], log: Log, today: str | None) -> PatchResult:
    day = today or datetime.now(timezone.utc).strftime("%Y%m%d")
    new_tag = _next_tag(client, repository, tag, day)
    cmd = image.attrs.get("Config", {}).get("Cmd") or ["python3"]
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    changes = [
        f"CMD {json.dumps(cmd)}",
        "ENTRYPOINT []",
        f"LABEL {LABEL_PATCHED}={json.dumps(stamp)} {LABEL_PATCHED_FROM}={json.dumps(image.id)} "
        f"{LABEL_PATCH_UPDATES}={json.dumps(str(updated))} "
        f"{LABEL_PATCH_PACKAGES}={json.dumps(json.dumps(packages[:200]))}",
    ]
    if not any(t == f"{repository}:{tag}{ORIGINAL_SUFFIX}" for t in image.tags) and \
            LABEL_PATCHED not in image.labels:
        image.tag(repository, f"{tag}{ORIGINAL_SUFFIX}")  # the unpatched image keeps a name
    committed = container.commit(repository=repository, tag=new_tag, changes=changes)
    client.api.tag(committed.id, repository, tag, force=True)  # move the floating tag
    log(f"{repository}:{new_tag} ({committed.id[:19]}): {updated} package(s) updated; "
        f"{repository}:{tag} now points at it")
    return PatchResult(f"{repository}:{tag}", image.id, committed.id, f"{repository}:{new_tag}",
                       updated, packages, True)


def list_bases(client: docker.DockerClient) -> list[dict[str, Any]]:
    """Every offline base image in the engine: its tags, when it was made or patched, and how
    many packages its patch updated; newest first per repository."""
    rows = []
    with engine_calls():
        for image in client.images.list(filters={"label": LABEL_BASE}):
            labels = image.labels
            rows.append({
                "id": image.id, "tags": sorted(image.tags),
                "base": labels.get(LABEL_BASE), "suite": labels.get("org.mlws.suite"),
                "created": image.attrs.get("Created"),
                "patched": labels.get(LABEL_PATCHED),
                "patched_from": labels.get(LABEL_PATCHED_FROM),
                "updated": int(labels.get(LABEL_PATCH_UPDATES) or 0),
            })
    rows.sort(key=lambda r: (str(r["base"]), str(r["created"])), reverse=True)
    return rows


def run_in(client: docker.DockerClient, image: str, command: str) -> str:
    """``command``'s output in a short-lived container of ``image`` (no network)."""
    _code, out = run_to_end(client, image, [command], entrypoint=["/bin/sh", "-c"],
                            network_disabled=True)
    return out.decode("utf-8", "replace")
