"""Offline base images for environment builds, made from Debian packages.

No container registry is reachable from the build machines, so ``FROM python:3.11-slim`` cannot be
pulled. Instead each curated base image is a ``debootstrap`` of a Debian suite, imported into the
local Docker engine with the Engine API (``POST /images/create?fromSrc=-``, which is
``client.api.import_image`` in docker-py) and tagged, e.g. ``mlws/base-python:3.11-bookworm``.

Builders that ``pip install`` from PyPI inside a ``RUN`` step must give pip the host's CA bundle:
see :data:`PIP_CA_DOCKERFILE_SNIPPET` (proven by ``tests/integration/test_bootstrap.py``).

Debootstrap fetches from the Debian mirror this machine's apt is configured with, or from
``MLWS_DEBIAN_MIRROR`` when that is set (see :func:`jupyter_mlws.environments.machine.debian_mirror`).

Needs root (debootstrap) and a running engine: ``bash scripts/docker-up.sh`` provides both.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound
from docker.models.images import Image

from jupyter_mlws.docker_engine import docker_client, engine_calls
from jupyter_mlws.environments.machine import debian_mirror
from jupyter_mlws.errors import BuildError, DockerUnavailableError

__all__ = [
    "BASE_IMAGES",
    "DEFAULT_BASE_IMAGE",
    "HOST_CA_BUNDLE",
    "PIP_CA_DOCKERFILE_SNIPPET",
    "BaseImageRecipe",
    "BootstrapResult",
    "bootstrap_base_images",
    "main",
]

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LABEL_BASE = "org.mlws.base"
LABEL_RECIPE = "org.mlws.recipe"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TAIL_LINES = 40

#: Dockerfile lines, placed right after ``FROM <base image>``, that let ``RUN pip install`` reach
#: PyPI: the machines reach it through a TLS-intercepting egress proxy whose CA is only in the
#: host's bundle. The builder copies :data:`HOST_CA_BUNDLE` into the build context as
#: ``mlws-host-ca.crt``. Debian's system python is "externally managed" (PEP 668), so packages go
#: into a venv (``/opt/venv``, first on PATH), never into the system site-packages.
PIP_CA_DOCKERFILE_SNIPPET = """\
COPY mlws-host-ca.crt /usr/local/share/mlws/host-ca.crt
ENV PIP_CERT=/usr/local/share/mlws/host-ca.crt \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PIP_NO_CACHE_DIR=1 \\
    VIRTUAL_ENV=/opt/venv \\
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN python3 -m venv /opt/venv
"""


@dataclass(frozen=True)
class BaseImageRecipe:
    """How to make one base image with ``debootstrap``.

    ``mirror`` ``None`` means the machine's Debian mirror, read when the recipe is used
    (:meth:`resolved`).
    """

    suite: str
    variant: str = "minbase"
    include: tuple[str, ...] = ()
    mirror: str | None = None
    description: str = ""
    cmd: tuple[str, ...] = ("python3",)

    def resolved(self) -> BaseImageRecipe:
        """This recipe with its mirror filled in from the machine's configuration.

        Raises:
            BuildError: no mirror is set and none is configured on the machine.
        """
        if self.mirror:
            return self
        return dataclasses.replace(self, mirror=debian_mirror(self.suite))

    @property
    def digest(self) -> str:
        """Short hash of what goes into the image; stored as a label to spot stale images."""
        mirror = self.resolved().mirror
        text = json.dumps([self.suite, self.variant, sorted(self.include), mirror])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def debootstrap_command(self, rootfs: Path) -> list[str]:
        """The ``debootstrap`` command line that fills ``rootfs``."""
        cmd = ["debootstrap", f"--variant={self.variant}"]
        if self.include:
            cmd.append("--include=" + ",".join(self.include))
        return [*cmd, self.suite, str(rootfs), str(self.resolved().mirror)]

    def changes(self, name: str) -> list[str]:
        """Dockerfile instructions applied at import (the only metadata ``docker import`` takes)."""
        return [
            f"ENV PATH={_PATH}",
            "ENV LANG=C.UTF-8",
            f'LABEL {LABEL_BASE}="{name}" {LABEL_RECIPE}="{self.digest}" '
            f'org.mlws.suite="{self.suite}" '
            f"org.opencontainers.image.description={json.dumps(self.description)}",
            "CMD " + json.dumps(list(self.cmd)),
        ]


DEFAULT_BASE_IMAGE = "mlws/base-python:3.11-bookworm"
#: libgomp1 is the OpenMP runtime LightGBM's and XGBoost's PyPI wheels expect from the system.
_PYTHON_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates", "libgomp1")

#: The curated base images, by the tag they get in the engine.
BASE_IMAGES: dict[str, BaseImageRecipe] = {
    DEFAULT_BASE_IMAGE: BaseImageRecipe(
        suite="bookworm",
        include=_PYTHON_PACKAGES,
        description="Debian 12 minbase with Python 3.11, pip and venv (made offline by debootstrap)",
    ),
    "mlws/base-python:3.9-bullseye": BaseImageRecipe(
        suite="bullseye",
        include=_PYTHON_PACKAGES,
        description="Debian 11 minbase with Python 3.9, pip and venv (made offline by debootstrap)",
    ),
    "mlws/base-python:3.13-trixie": BaseImageRecipe(
        suite="trixie",
        include=_PYTHON_PACKAGES,
        description="Debian 13 minbase with Python 3.13, pip and venv (made offline by debootstrap)",
    ),
}


@dataclass(frozen=True)
class BootstrapResult:
    """What :func:`bootstrap_base_images` did for one image."""

    name: str
    image_id: str
    size: int  # bytes, as the engine reports it
    seconds: float
    reused: bool


def bootstrap_base_images(
    client: docker.DockerClient,
    names: list[str] | None = None,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
    workdir: Path | None = None,
) -> list[BootstrapResult]:
    """Make sure the named base images (default: all of :data:`BASE_IMAGES`) exist in the engine.

    An image already tagged in the engine from the same recipe (label ``org.mlws.recipe``) is
    reused unless ``force``. Otherwise it is debootstrapped into a temporary folder under
    ``workdir`` (default: the system temp dir; it needs exec and device nodes, so no
    ``noexec``/``nodev`` mount), imported, tagged, and the folder removed. Debootstrap's output
    goes line by line to ``log``. Concurrent calls on one machine build each image only once.

    Raises:
        DockerUnavailableError: the engine cannot be reached.
        BuildError: a name is not in :data:`BASE_IMAGES`, or debootstrap or the import failed.
    """
    wanted = list(BASE_IMAGES) if names is None else list(names)
    unknown = [n for n in wanted if n not in BASE_IMAGES]
    if unknown:
        raise BuildError(
            f"Unknown base image(s): {', '.join(unknown)}.",
            step="resolve",
            hint=f"Known: {', '.join(BASE_IMAGES)}.",
        )
    with engine_calls():
        client.ping()
        return [_ensure(client, name, force, log, workdir) for name in wanted]


def _ensure(
    client: docker.DockerClient,
    name: str,
    force: bool,
    log: Callable[[str], None],
    workdir: Path | None,
) -> BootstrapResult:
    """Reuse or make one base image."""
    start = time.monotonic()
    recipe = BASE_IMAGES[name].resolved()
    image = None if force else _current(client, name, recipe, log)
    reused = image is not None
    if image is None:
        with _machine_lock(name, log):  # one build per image at a time on this machine
            if not force:  # another process may have made it while we waited
                image = _current(client, name, recipe, lambda _: None)
            reused = image is not None
            if image is None:
                _build(client, name, recipe, log, workdir)
                image = client.images.get(name)
    return BootstrapResult(
        name=name,
        image_id=str(image.id),
        size=int(image.attrs.get("Size") or 0),
        seconds=round(time.monotonic() - start, 2),
        reused=reused,
    )


def wanted_images(names: list[str], pythons: list[str], all_images: bool) -> list[str]:
    """The base images ``mlws image bootstrap`` makes: the names and Python series given, all
    with ``all_images``, else the default base only.

    Raises:
        BuildError: a Python series has no offline base.
    """
    from jupyter_mlws.environments.image_map import DEBIAN_PYTHONS

    if all_images:
        return list(BASE_IMAGES)
    unknown = [p for p in pythons if p not in DEBIAN_PYTHONS]
    if unknown:
        raise BuildError(
            f"There is no offline base for Python {', '.join(unknown)}.",
            step="resolve", hint=f"Debian's suites give Python {', '.join(DEBIAN_PYTHONS)}.")
    wanted = list(names) + [DEBIAN_PYTHONS[p][1] for p in pythons]
    return list(dict.fromkeys(wanted)) or [DEFAULT_BASE_IMAGE]


def main(argv: list[str] | None = None) -> None:
    """``mlws image bootstrap [NAME ...] [--python X.Y ...] [--all] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="mlws image bootstrap", description="Make the curated offline base images."
    )
    parser.add_argument(
        "names", nargs="*", help=f"images to make (default: {DEFAULT_BASE_IMAGE})"
    )
    parser.add_argument("--python", action="append", default=[],
                        help="the base of this Python series (3.9, 3.11, 3.13); repeatable")
    parser.add_argument("--all", action="store_true", help="every offline base")
    parser.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    args = parser.parse_args(argv)
    try:
        names = wanted_images(args.names, args.python, args.all)
        results = bootstrap_base_images(docker_client(), names, force=args.force)
    except (BuildError, DockerUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    for r in results:
        how = "already there" if r.reused else "made"
        print(f"{r.name}: {how}, {r.image_id[:19]}, {r.size / 1e6:.0f} MB, {r.seconds:.1f} s")


# --- internals ------------------------------------------------------------------------------------
def _current(
    client: docker.DockerClient, name: str, recipe: BaseImageRecipe, log: Callable[[str], None]
) -> Image | None:
    """The tagged image if it was made from this recipe, else None."""
    try:
        image = client.images.get(name)
    except ImageNotFound:
        return None
    if image.labels.get(LABEL_RECIPE) != recipe.digest:
        log(f"{name}: present but made from another recipe; remaking it")
        return None
    return image


@contextlib.contextmanager
def _machine_lock(name: str, log: Callable[[str], None]) -> Iterator[None]:
    """Exclusive lock per image name, shared by all processes on the machine."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    path = Path(tempfile.gettempdir()) / f"mlws-image-{safe}.lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{name}: another process is making it; waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(
    client: docker.DockerClient,
    name: str,
    recipe: BaseImageRecipe,
    log: Callable[[str], None],
    workdir: Path | None,
) -> None:
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise BuildError(
            "debootstrap is not installed.",
            step="debootstrap",
            hint="Run `bash scripts/docker-up.sh` (installs it) or `apt-get install debootstrap`.",
        )
    if os.geteuid() != 0:
        raise BuildError("debootstrap must run as root.", step="debootstrap")
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mlws-bootstrap-", dir=workdir))
    rootfs, tarball = tmp / "rootfs", tmp / "rootfs.tar"
    try:
        t0 = time.monotonic()
        cmd = recipe.debootstrap_command(rootfs)
        log(f"{name}: {' '.join(cmd)}")
        _run_streamed(cmd, log, step="debootstrap", what=f"debootstrap of {name}")
        log(f"{name}: debootstrap done in {time.monotonic() - t0:.0f}s; importing")
        _slim(rootfs)
        _run_streamed(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."],
            log,
            step="tar",
            what=f"packing {name}",
        )
        repository, tag = _split(name)
        try:
            answer = client.api.import_image(
                src=str(tarball), repository=repository, tag=tag, changes=recipe.changes(name)
            )
        except DockerException as exc:
            raise BuildError(f"Importing {name} into Docker failed: {exc}", step="import") from exc
        _check_import_answer(name, answer)
    finally:
        _remove_tree(tmp, log)


def _run_streamed(cmd: list[str], log: Callable[[str], None], *, step: str, what: str) -> None:
    """Run ``cmd``, passing each output line to ``log``; BuildError with the tail on failure."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            log(line)
    if proc.returncode != 0:
        raise BuildError(
            f"{what} failed (exit code {proc.returncode}).", step=step, log_tail="\n".join(tail)
        )


def _slim(rootfs: Path) -> None:
    """Drop what an image should not carry: downloaded .debs, apt lists, the host's identity."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for path in rootfs.glob(pattern):
            if path.is_file() and not path.is_symlink() and path.name != "lock":
                path.unlink()
    # copied from the host by debootstrap; the engine mounts its own at run time
    for name in ("etc/hostname", "etc/resolv.conf"):
        path = rootfs / name
        if path.is_file() and not path.is_symlink():
            path.write_text("")


def _split(name: str) -> tuple[str, str]:
    repository, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, "latest"
    return repository, tag


def _check_import_answer(name: str, answer: object) -> None:
    """The import answers a stream of JSON lines; an ``error`` in one of them means failure."""
    for line in str(answer).splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("error"):
            raise BuildError(f"Importing {name} into Docker failed: {item['error']}", step="import")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [ln.split()[1].replace("\\040", " ") for ln in lines if len(ln.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_tree(path: Path, log: Callable[[str], None]) -> None:
    """Remove the temp folder, first unmounting what a failed debootstrap may have left mounted."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    left = _mounts_under(path)
    if left:  # never recurse into a live /proc or /sys
        log(f"warning: not removing {path}: still mounted: {', '.join(left)}")
        return
    shutil.rmtree(path, ignore_errors=True)
