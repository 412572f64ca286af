"""Venvs made without running pip (:mod:`jupyter_mlws.environments.wheel_install`): the venv has
what ``python -m venv`` gives it, its scripts run from where the venv lives, and only wheels the
interpreter takes are unpacked (real venvs, real wheels)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.environments import wheel_install
from jupyter_mlws.environments.venv_builder import VenvMaterializer, venv_python
from jupyter_mlws.errors import BuildError

_NAMES = ("import importlib.metadata as m; "
          "print(*sorted(d.metadata['Name'].lower() for d in m.distributions()))")


def _names(py: Path) -> list[str]:
    return subprocess.run([str(py), "-c", _NAMES], capture_output=True, text=True,
                          check=True).stdout.split()


def test_a_pip_venv_has_what_python_m_venv_gives_and_its_pip_runs(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "venv", str(reference)], check=True)
    builder = VenvMaterializer(tmp_path / "envs", use_uv=False, wheelhouse=tmp_path / "wheels")
    lines: list[str] = []
    built = builder.build(EnvironmentSpec(name="bare", image="python:3.11"), log=lines.append)
    venv = Path(built.image)
    assert not any("ensurepip" in ln for ln in lines)
    assert _names(venv_python(venv)) == _names(venv_python(reference))  # pip (+ setuptools)
    script = (venv / "bin" / "pip").read_text()  # (a long path gets a /bin/sh exec line)
    assert str(venv_python(venv)) in script and ".tmp-" not in script  # the final folder
    out = subprocess.run([str(venv / "bin" / "pip"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert str(venv / "lib") in out
    installer = next((venv / "lib").glob("python3*/site-packages/pip-*.dist-info/INSTALLER"))
    assert installer.read_bytes() == wheel_install.INSTALLER


def test_only_wheels_this_interpreter_takes_are_unpacked(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")],
                   check=True)
    info = wheel_install.describe(venv_python(tmp_path / "v"))
    assert info is not None
    bundled = wheel_install.bundled_wheels(info)
    assert any(p.name.startswith("pip-") for p in bundled)
    assert wheel_install.runnable_here(info, bundled)
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    for foreign in (f"numpy-2.0.0-{tag}-{tag}-win_amd64.whl",  # another platform
                    "numpy-2.0.0-cp27-cp27mu-manylinux1_x86_64.whl",  # another Python
                    "six-1.16.0.tar.gz",  # not a wheel
                    "not a wheel name.whl"):
        assert not wheel_install.runnable_here(info, [*bundled, tmp_path / foreign]), foreign
    other = {**info, "kind": ["pypy", [3, 10], "", "pypy310-pp73"]}
    assert not wheel_install.runnable_here(other, bundled)  # judged only for our own kind


def test_a_wheel_that_does_not_unpack_fails_the_build_naming_it(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")],
                   check=True)
    info = wheel_install.describe(venv_python(tmp_path / "v"))
    assert info is not None
    bad = tmp_path / "six-1.16.0-py2.py3-none-any.whl"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(BuildError) as err:
        wheel_install.unpack_wheels(info, tmp_path / "v", [bad])
    assert bad.name in str(err.value) and err.value.step == "unpack wheels"
    assert "prune --wheels" in str(err.value.hint)


def _wheel(folder: Path, name: str) -> Path:
    """A pure-Python wheel of ``name`` whose module lives in the namespace folder ``shared/ns``."""
    import base64
    import hashlib
    import zipfile

    info = f"{name}-1.0.dist-info"
    files = {f"shared/ns/{name}.py": b"VALUE = 1\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    path = folder / f"{name}-1.0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as z:
        for rel, data in files.items():
            z.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{rel},sha256={digest.decode()},{len(data)}")
        z.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


def test_wheels_sharing_a_new_folder_unpack_at_once(tmp_path: Path) -> None:
    """Unpacked several at a time, wheels whose files go into the same new (namespace) folder
    all land (installer alone made that folder racily: most rounds failed)."""
    for round_ in range(10):
        venv = tmp_path / f"v{round_}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        info = wheel_install.describe(venv_python(venv))
        assert info is not None
        names = [f"part{round_}x{i}" for i in range(8)]
        wheel_install.unpack_wheels(info, venv, [_wheel(tmp_path, n) for n in names])
        (site,) = (venv / "lib").glob("python3*/site-packages")
        assert sorted(p.stem for p in (site / "shared" / "ns").glob("*.py")) == sorted(names)


def test_wheels_are_shared_between_processes_and_a_childs_failure_names_its_wheel(
        tmp_path: Path) -> None:
    """Several wheels are unpacked by this process and a child process per further core; the
    child's failure fails the build with the same words as this process's."""
    assert [[w.name for w in g] for g in wheel_install._share(
        [_sized(tmp_path, "a", 50), _sized(tmp_path, "b", 40), _sized(tmp_path, "c", 30),
         _sized(tmp_path, "d", 25)], 2)] == [["a.whl", "d.whl"], ["b.whl", "c.whl"]]
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    info = wheel_install.describe(venv_python(venv))
    assert info is not None
    good = _wheel(tmp_path, "goodpart")
    bad = tmp_path / "badpart-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip file" * 10)  # smaller than the good one: the child's
    with pytest.raises(BuildError) as err:
        wheel_install.unpack_wheels(info, venv, [good, bad])
    if (wheel_install.os.cpu_count() or 1) > 1:
        assert [w.name for w in wheel_install._share([good, bad], 2)[1]] == [bad.name]
    assert f"the wheel {bad.name} could not be unpacked (BadZipFile" in str(err.value)
    assert err.value.step == "unpack wheels" and "prune --wheels" in str(err.value.hint)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    assert (site / "shared" / "ns" / "goodpart.py").is_file()  # this process's share landed


def _sized(folder: Path, name: str, size: int) -> Path:
    path = folder / f"{name}.whl"
    path.write_bytes(b"x" * size)
    return path
