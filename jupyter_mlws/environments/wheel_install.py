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

import contextlib
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
    do); nothing is compiled. A file two wheels ship is overwritten, as pip overwrites it.

    Several wheels at once, on every core: unpacking is mostly Python (``zipfile``, the
    ``RECORD``), so the wheels are shared, largest first, between this process and one child
    process per further core (``python -m jupyter_mlws.environments.wheel_install``)."""
    groups = _share(wheels, min(len(wheels), os.cpu_count() or 1))
    children = [subprocess.Popen([sys.executable, "-m", __name__, str(venv),
                                  *[str(w) for w in group]],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
                for group in groups[1:]]
    failure: BuildError | None = None
    for child in children:
        assert child.stdin is not None
        with contextlib.suppress(OSError):
            child.stdin.write(json.dumps(info))
            child.stdin.close()
    try:
        _unpack_here(info, venv, groups[0] if groups else [])
    except BuildError as exc:
        failure = exc
    for child, group in zip(children, groups[1:]):
        assert child.stderr is not None
        err = child.stderr.read()
        child.stderr.close()
        child.wait()
        if child.returncode != 0 and failure is None:
            failure = _child_failure(err, group)
    if failure is not None:
        raise failure


def _share(wheels: list[Path], n: int) -> list[list[Path]]:
    """``wheels`` in ``n`` groups of about the same size (largest first, each to the lightest)."""
    groups: list[list[Path]] = [[] for _ in range(max(1, n))]
    sizes = [0] * len(groups)
    for wheel in sorted(wheels, key=lambda w: -w.stat().st_size):
        i = sizes.index(min(sizes))
        groups[i].append(wheel)
        sizes[i] += wheel.stat().st_size
    return [g for g in groups if g]


def _failed(wheel: Path, why: str) -> BuildError:
    return BuildError(f"Making the venv failed: the wheel {wheel.name} could not be unpacked "
                      f"({why}).", step="unpack wheels",
                      hint="Run `mlws env prune --wheels` and build again (the file is "
                           "downloaded again).")


def _child_failure(err: str, group: list[Path]) -> BuildError:
    """The child's own error (its last line: ``{"wheel": ..., "error": ...}``), else why."""
    with contextlib.suppress(ValueError, IndexError, TypeError):
        said = json.loads(err.strip().splitlines()[-1])
        wheel = next(w for w in group if w.name == said["wheel"])
        return _failed(wheel, str(said["error"]))
    return BuildError("Making the venv failed: unpacking "
                      f"{', '.join(w.name for w in group)} stopped ({err.strip()[-300:]}).",
                      step="unpack wheels")


def _unpack_here(info: dict[str, object], venv: Path, wheels: list[Path]) -> None:
    """Unpack ``wheels`` in this process (a thread each, largest first)."""
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
            raise _failed(wheel, f"{type(exc).__name__}: {exc}") from exc

    largest_first = sorted(wheels, key=lambda w: -w.stat().st_size)
    with ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        list(pool.map(one, largest_first))


def main(argv: list[str]) -> int:
    """In a child of :func:`unpack_wheels`: ``VENV WHEEL...``, the venv's description on
    stdin; on failure the last line of stderr says which wheel and why (JSON)."""
    venv, wheels = Path(argv[0]), [Path(a) for a in argv[1:]]
    try:
        _unpack_here(json.loads(sys.stdin.read()), venv, wheels)
    except BuildError as exc:
        name = next((w.name for w in wheels if w.name in str(exc)), "")
        cause = exc.__cause__ or exc
        print(json.dumps({"wheel": name, "error": f"{type(cause).__name__}: {cause}"}),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
