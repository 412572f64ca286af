"""Bytecode for images rebuilt from a lock: compiled on this machine and served to the build.

An image rebuilt from its lock installs the lock's exact files, served from the wheelhouse
(:mod:`.docker_wheels`). Compiling their bytecode inside the build took about a quarter of such
a rebuild. When this machine's interpreter is a CPython of the lock's series, the builder
compiles the ``.py`` files of those wheels here instead, while the build installs them:

- The sources come from the wheel files themselves, whose sha256 the lock names. The paths are
  the ones the image's venv gives them, and the skipped paths are the build's own
  (:data:`~.dockerfile.COMPILE_SKIP`).
- The bytecode is *checked-hash* (PEP 552): valid whatever the files' mtimes (installers set
  their own), and checked against the source on import.
- The result is one tar, named by the bytecode magic number of the interpreter that made it,
  and served by name beside the wheels (build argument :data:`~.dockerfile.PYC_ARG`).
- Once the lock is installed, the build fetches the tar. It unpacks it into its
  ``site-packages`` only when its own interpreter's magic number is the one in the name, and
  only ``__pycache__/*.pyc`` members whose source is installed there. Otherwise it compiles
  as before. The build log says which happened.

The tar is kept in the wheelhouse (``pyc-image/``), keyed by the wheels' sha256s, the magic
number and the skipped paths, so the next rebuild with these files only serves it. ``mlws env
prune --wheels`` empties it with the wheelhouse. Nothing a build container wrote is ever kept or
served: only this machine's compilation of files the lock names.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import io
import os
import posixpath
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

from jupyter_mlws.environments.dockerfile import COMPILE_SKIP, VENV_PATH

__all__ = ["BUNDLE_PREFIX", "ImageBytecode", "bundle_name"]

BUNDLE_PREFIX = "mlws-pyc-"
_FORMAT = 1
#: How long the server waits for a bundle being compiled before the build compiles instead.
WAIT_S = 600.0


def bundle_name() -> str:
    """The served name of a bundle made by this interpreter (its magic number in it)."""
    return f"{BUNDLE_PREFIX}{importlib.util.MAGIC_NUMBER.hex()}.tar"


def usable_for(series: str) -> bool:
    """Whether this interpreter's bytecode can serve an image of the Python ``series``."""
    return (sys.implementation.name == "cpython"
            and series == f"{sys.version_info[0]}.{sys.version_info[1]}")


class ImageBytecode:
    """Bundles of compiled bytecode kept under ``root`` (the wheelhouse's ``pyc-image/``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, wheels: list[Path]) -> Path:
        """Where the bundle of ``wheels`` is kept (named by their sha256s; see module doc)."""
        shas = sorted(p.parent.name for p in wheels)  # (the wheelhouse keeps a file by sha256)
        facts = [_FORMAT, importlib.util.MAGIC_NUMBER.hex(), sys.implementation.cache_tag,
                 COMPILE_SKIP, shas]
        key = hashlib.sha256(repr(facts).encode()).hexdigest()
        return self.root / f"{key}.tar"

    def is_kept(self, wheels: list[Path]) -> bool:
        """Whether the bundle of ``wheels`` is made already."""
        return bool(wheels) and _regular_file(self.path_for(wheels))

    def prepare(self, wheels: list[Path], series: str) -> Callable[[], Path | None] | None:
        """Start making the bundle of ``wheels`` (kept: nothing to do); a call that waits for
        it and returns its path (``None`` if it failed), or ``None`` when this interpreter's
        bytecode cannot serve that series."""
        if not wheels or not usable_for(series):
            return None
        target = self.path_for(wheels)
        if _regular_file(target):
            return lambda: target
        done: list[Path | None] = []

        def work() -> None:
            try:
                done.append(self._make(wheels, series, target))
            except Exception:  # noqa: BLE001 - the build then compiles its bytecode itself
                done.append(None)

        thread = threading.Thread(target=work, daemon=True, name="mlws-image-bytecode")
        thread.start()

        def wait() -> Path | None:
            thread.join(WAIT_S)
            return done[0] if done else None

        return wait

    def prepare_in_background(self, wheels: list[Path], series: str) -> None:
        """Make the bundle of ``wheels`` in a detached process (after a build that kept them,
        so that the first rebuild finds it), unless it is kept or cannot serve ``series``."""
        if not wheels or not usable_for(series) or _regular_file(self.path_for(wheels)):
            return
        with contextlib.suppress(OSError):
            subprocess.Popen(  # noqa: S603 - an argv list, no shell
                [sys.executable, "-m", __name__, str(self.root), series,
                 *[str(p) for p in wheels]],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)

    def _make(self, wheels: list[Path], series: str, target: Path) -> Path | None:
        """Make the bundle at ``target`` under its lock (one process compiles it; the others
        wait and find it made)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(target.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            if _regular_file(target):
                return target
            return self._compile(wheels, series, target)

    def _compile(self, wheels: list[Path], series: str, target: Path) -> Path | None:
        site = f"{VENV_PATH}/lib/python{series}/site-packages"
        skip = re.compile(COMPILE_SKIP)
        with tempfile.TemporaryDirectory(prefix="mlws-image-pyc-") as tmp:
            tree = Path(tmp) / "site"
            for wheel in wheels:
                _unpack_sources(wheel, tree, lambda rel: bool(skip.search(f"{site}/{rel}")))
            if not tree.is_dir():
                return None
            # errors are left as the build leaves them (a module that does not compile has none)
            subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                            "--invalidation-mode", "checked-hash", "-d", site, str(tree)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            part = target.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{target.name}")
            with tarfile.open(part, "w") as out:
                for rel in sorted(_pycs(tree)):
                    data = (tree / rel).read_bytes()
                    info = tarfile.TarInfo(rel)
                    info.size, info.mode = len(data), 0o644
                    out.addfile(info, io.BytesIO(data))
            os.replace(part, target)  # atomic: a reader sees all of it or nothing
        return target


def _regular_file(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return path.is_file() and not path.is_symlink()
    return False


def _unpack_sources(wheel: Path, tree: Path, skipped: Callable[[str], bool]) -> None:
    """The ``.py`` files of ``wheel`` that go into ``site-packages``, at their paths there."""
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            rel = _site_path(name)
            if rel is None or not rel.endswith(".py") or skipped(rel):
                continue
            dest = tree / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(name))


def _site_path(name: str) -> str | None:
    """Where the wheel member ``name`` goes, relative to ``site-packages``; ``None`` when
    elsewhere (scripts, headers, data) or not a plain relative path."""
    parts = name.split("/")
    if len(parts) > 2 and parts[0].endswith(".data"):
        if parts[1] not in ("purelib", "platlib"):
            return None
        parts = parts[2:]
    rel = "/".join(parts)
    if (not rel or rel.startswith("/") or "\\" in rel or posixpath.normpath(rel) != rel
            or ".." in parts):
        return None
    return rel


def _pycs(tree: Path) -> list[str]:
    out = []
    for dirpath, _dirs, names in os.walk(tree):
        if os.path.basename(dirpath) != "__pycache__":
            continue
        for name in names:
            if name.endswith(".pyc"):
                out.append(os.path.relpath(os.path.join(dirpath, name), tree))
    return out


#: Run by the image's venv interpreter after the lock is installed (as
#: :data:`~.dockerfile.PYC_SCRIPT_FILE`, removed after) with the bundle's URL. Fetches it
#: and unpacks its ``__pycache__/*.pyc`` members whose source is in the venv's
#: ``site-packages``; exits non-zero
#: (the build then compiles) when the bundle's magic number is not this interpreter's or the
#: bundle is not one.
UNPACK_SCRIPT = (
    "import importlib.util as u, io, os, sys, sysconfig, tarfile, urllib.request as r\n"
    "url, site = sys.argv[1], sysconfig.get_path('purelib')\n"
    f"if not url.endswith('/{BUNDLE_PREFIX}' + u.MAGIC_NUMBER.hex() + '.tar'):\n"
    "    print('mlws-bytecode: this interpreter cannot use the served bytecode'); sys.exit(1)\n"
    "t = tarfile.open(fileobj=io.BytesIO(r.urlopen(url, timeout=120).read()))\n"
    "ms = t.getmembers()\n"
    "for m in ms:\n"
    "    p = m.name.split('/')\n"
    "    if (not m.isfile() or m.name.startswith('/') or '..' in p or len(p) < 2\n"
    "            or p[-2] != '__pycache__' or not p[-1].endswith('.pyc')):\n"
    "        sys.exit('mlws-bytecode: unexpected member ' + repr(m.name))\n"
    "n = 0\n"
    "for m in ms:\n"
    "    p = m.name.split('/')\n"
    "    src = os.path.join(site, *p[:-2], p[-1].rsplit('.', 2)[0] + '.py')\n"
    "    if not os.path.isfile(src) or os.path.islink(src):\n"
    "        continue\n"
    "    os.makedirs(os.path.join(site, *p[:-1]), exist_ok=True)\n"
    "    with open(os.path.join(site, *p), 'wb') as f:\n"
    "        f.write(t.extractfile(m).read())\n"
    "    n += 1\n"
    "print('mlws-bytecode: %d files compiled on the host' % n)\n"
)


def main(argv: list[str]) -> int:
    """``python -m jupyter_mlws.environments.image_pyc ROOT SERIES WHEEL...``: make a bundle."""
    root, series, wheels = Path(argv[0]), argv[1], [Path(a) for a in argv[2:]]
    if not usable_for(series) or not wheels:
        return 1
    bytecode = ImageBytecode(root)
    return 0 if bytecode._make(wheels, series, bytecode.path_for(wheels)) is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
