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
