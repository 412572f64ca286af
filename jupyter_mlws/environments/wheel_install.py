"""Unpacking wheels into a venv without pip, with PyPA's ``installer`` (the reference wheel
installer): the pip (and, before Python 3.12, setuptools) of a new venv, and a lock whose every
file is a wheel kept in the wheelhouse.

What pip adds around unpacking is not needed there: the files are chosen and checked already
(each one's sha256 is the lock's, see :mod:`.wheelhouse`), nothing is resolved, nothing is built.
``python -m venv`` runs pip to install its bundled wheels and compiles them file by file (its
``ensurepip`` drops every ``PIP_*`` variable, so ``PIP_NO_COMPILE`` cannot stop it); pip itself
takes a second to start. Here a venv is made with ``--without-pip`` and the same bundled wheels
are unpacked, several wheels at once; bytecode is compiled afterwards for every package
(:mod:`.pyc_cache`).

Only wheels this interpreter can run are unpacked (their tags against the venv's interpreter,
which must be the running one's kind: same implementation, version and ABI, so this machine's
tags are its tags); otherwise the caller installs with pip as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jupyter_mlws.errors import BuildError

__all__ = ["bundled_wheels", "runnable_here", "unpack_wheels"]

#: What a venv's interpreter says of itself: its scheme's paths and what its wheels' tags hang on.
_QUERY = (
    "import json, sys, sysconfig, pathlib\n"
    "try:\n"
    "    import ensurepip\n"
    "    bundled = sorted(str(p) for p in pathlib.Path(ensurepip.__file__).parent"
    ".joinpath('_bundled').glob('*.whl'))\n"
    "except ImportError:\n"
    "    bundled = []\n"
    "print(json.dumps({'paths': sysconfig.get_paths(), 'bundled': bundled,\n"
    "                  'kind': [sys.implementation.name, list(sys.version_info[:2]),\n"
    "                           sys.abiflags, sysconfig.get_config_var('SOABI')]}))\n"
)
INSTALLER = b"mlws\n"


def _kind() -> list[object]:
    return [sys.implementation.name, list(sys.version_info[:2]), sys.abiflags,
            sysconfig.get_config_var("SOABI")]


def describe(py: Path) -> dict[str, object] | None:
    """What the venv interpreter ``py`` says of itself, or ``None`` when it cannot say."""
    proc = subprocess.run([str(py), "-I", "-c", _QUERY], capture_output=True, text=True,
                          check=False)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return None
    return data if proc.returncode == 0 and isinstance(data, dict) else None


def bundled_wheels(info: dict[str, object]) -> list[Path]:
    """The wheels ``python -m venv`` would install (pip, and setuptools before 3.12)."""
    found = info.get("bundled")
    return [Path(p) for p in found if isinstance(p, str)] if isinstance(found, list) else []


def runnable_here(info: dict[str, object], wheels: list[Path]) -> bool:
    """Whether every file of ``wheels`` is a wheel whose tags this venv's interpreter takes
    (judged only for an interpreter of the running one's kind; ``False`` otherwise)."""
    if info.get("kind") != _kind():
        return False
    from packaging.tags import sys_tags
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    supported = set(sys_tags())
    for wheel in wheels:
        try:
            _name, _version, _build, tags = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            return False
        if not tags & supported:
            return False
    return True


def unpack_wheels(info: dict[str, object], venv: Path, wheels: list[Path]) -> None:
    """Unpack ``wheels`` into the venv at ``venv`` (its scripts name its interpreter, as pip's
    do), several at a time; nothing is compiled. A file two wheels ship is overwritten, as pip
    overwrites it."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    paths, kind = info["paths"], info["kind"]
    assert isinstance(paths, dict) and isinstance(kind, list)
    scheme = {key: str(paths[key]) for key in ("purelib", "platlib", "scripts", "data")}
    scheme["headers"] = str(venv / "include" / "site" / "python{}.{}".format(*kind[1]))
    class Destination(SchemeDictionaryDestination):
        """Folders made race-free: installer makes a file's folder when it does not see it,
        which fails when another wheel unpacked at the same time has just made it (two wheels
        sharing a namespace folder)."""

        def write_to_fs(self, scheme: Any, path: str, stream: Any, is_executable: bool) -> Any:
            root = os.path.abspath(self.scheme_dict[scheme])
            target = os.path.abspath(os.path.join(root, path))
            if os.path.commonpath([root, target]) == root:  # (installer refuses the others)
                os.makedirs(os.path.dirname(target), exist_ok=True)
            return super().write_to_fs(scheme, path, stream, is_executable)

    destination = Destination(scheme, interpreter=str(venv / "bin" / "python"),
                              script_kind="posix", overwrite_existing=True)

    def one(wheel: Path) -> None:
        try:
            with WheelFile.open(wheel) as source:
                install(source, destination, additional_metadata={"INSTALLER": INSTALLER})
        except Exception as exc:  # a damaged or malformed wheel: the build fails, saying which
            raise BuildError(f"Making the venv failed: the wheel {wheel.name} could not be "
                             f"unpacked ({type(exc).__name__}: {exc}).", step="unpack wheels",
                             hint="Run `mlws env prune --wheels` and build again (the file "
                                  "is downloaded again).") from exc

    largest_first = sorted(wheels, key=lambda w: -w.stat().st_size)
    with ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        list(pool.map(one, largest_first))
