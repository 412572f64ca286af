"""Bytecode compiled on the host for image rebuilds (issue 13): what goes into a bundle, and what
the build's unpacking script takes from one. Real wheels, a real venv, a real HTTP server."""

from __future__ import annotations

import importlib.util
import io
import marshal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from jupyter_mlws.environments import image_pyc
from jupyter_mlws.environments.docker_wheels import WheelServer
from jupyter_mlws.environments.image_pyc import ImageBytecode, bundle_name
from jupyter_mlws.environments.wheelhouse import Wheelhouse

SERIES = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"/opt/mlws/venv/lib/python{SERIES}/site-packages"
TAG = sys.implementation.cache_tag

SOURCES = {
    "pkg/__init__.py": "VALUE = 1\n",
    "pkg/mod.py": "def f():\n    raise ValueError('from mod')\n",
    "pkg/tests/test_pkg.py": "def test():\n    pass\n",  # skipped, as builds skip it
    "pkg/broken.py": "def (:\n",  # does not compile: left without bytecode
    "pkg-1.0.data/purelib/extra.py": "X = 2\n",
    "pkg-1.0.data/scripts/tool.py": "print('a script')\n",  # not site-packages
    "pkg-1.0.dist-info/RECORD": "",
}


def _wheel(tmp: Path, house: Wheelhouse, members: dict[str, str]) -> Path:
    path = tmp / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return house.path_of(house.add(path)) or path


def _bundle(tmp: Path, members: dict[str, str] = SOURCES) -> tuple[Path, Path]:
    house = Wheelhouse(tmp / "wheels")
    wheel = _wheel(tmp, house, members)
    bytecode = ImageBytecode(tmp / "wheels" / "pyc-image")
    wait = bytecode.prepare([wheel], SERIES)
    assert wait is not None
    made = wait()
    assert made is not None and bytecode.is_kept([wheel])
    return made, wheel


def test_a_bundle_holds_checked_hash_bytecode_at_the_images_paths(tmp_path: Path) -> None:
    made, _ = _bundle(tmp_path)
    with tarfile.open(made) as tar:
        names = sorted(tar.getnames())
        assert names == [f"__pycache__/extra.{TAG}.pyc",
                         f"pkg/__pycache__/__init__.{TAG}.pyc", f"pkg/__pycache__/mod.{TAG}.pyc"]
        data = tar.extractfile(f"pkg/__pycache__/mod.{TAG}.pyc").read()  # type: ignore[union-attr]
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked (PEP 552)
    assert data[8:16] == importlib.util.source_hash(SOURCES["pkg/mod.py"].encode())
    assert marshal.loads(data[16:]).co_filename == f"{SITE}/pkg/mod.py"


def test_only_plain_site_packages_paths_are_taken() -> None:
    site = image_pyc._site_path
    assert site("pkg/a.py") == "pkg/a.py"
    assert site("pkg-1.0.data/platlib/b.py") == "b.py"
    for bad in ("pkg-1.0.data/scripts/t.py", "pkg-1.0.data/headers/h.py", "/abs.py",
                "pkg/../../evil.py", "pkg/./a.py", "pkg\\a.py", ""):
        assert site(bad) is None, bad


def test_another_series_gets_no_bundle(tmp_path: Path) -> None:
    house = Wheelhouse(tmp_path / "wheels")
    wheel = _wheel(tmp_path, house, SOURCES)
    assert ImageBytecode(tmp_path / "b").prepare([wheel], "2.7") is None
    assert ImageBytecode(tmp_path / "b").prepare([], SERIES) is None


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A venv holding the package's sources (as an install of the wheel leaves them)."""
    folder = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = Path(subprocess.run(
        [str(folder / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    for rel in ("pkg/__init__.py", "pkg/mod.py"):  # extra.py is not installed here
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(SOURCES[rel])
    return folder


def _unpack(venv: Path, url: str) -> subprocess.CompletedProcess[str]:
    script = venv.parent / "mlws-pyc.py"
    script.write_text(image_pyc.UNPACK_SCRIPT)
    return subprocess.run([str(venv / "bin" / "python"), str(script), url],
                          capture_output=True, text=True, timeout=60)


def _site(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def test_the_build_unpacks_the_bytecode_of_what_it_installed(tmp_path: Path, venv: Path) -> None:
    made, _ = _bundle(tmp_path)
    server = WheelServer({}, {}, "127.0.0.1", lazy={bundle_name(): lambda: made})
    try:
        done = _unpack(venv, server.url + bundle_name())
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "mlws-bytecode: 2 files compiled on the host" in done.stdout
    site = _site(venv)
    assert sorted(p.name for p in site.rglob("*.pyc")) == [f"__init__.{TAG}.pyc",
                                                            f"mod.{TAG}.pyc"]
    # the venv's interpreter uses it (not a compilation of its own) and names its own file
    run = subprocess.run([str(venv / "bin" / "python"), "-v", "-c",
                          "import pkg.mod\ntry:\n    pkg.mod.f()\nexcept ValueError as e:\n"
                          "    print(e.__traceback__.tb_next.tb_frame.f_code.co_filename)"],
                         capture_output=True, text=True, check=True)
    assert f"code object from '{site}/pkg/__pycache__/mod.{TAG}.pyc'" in run.stderr
    assert run.stdout.strip() == f"{site}/pkg/mod.py"


def test_a_bundle_of_another_interpreter_or_shape_is_refused_whole(tmp_path: Path,
                                                                   venv: Path) -> None:
    made, _ = _bundle(tmp_path)
    odd = tmp_path / "odd.tar"
    with tarfile.open(odd, "w") as tar:
        for name in (f"pkg/__pycache__/__init__.{TAG}.pyc", "pkg/__pycache__/../../evil.pyc"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"pyc"))
    other = "mlws-pyc-00000000.tar"
    server = WheelServer({}, {}, "127.0.0.1",
                         lazy={other: lambda: made, bundle_name(): lambda: odd})
    try:
        assert _unpack(venv, server.url + other).returncode != 0  # another magic number
        refused = _unpack(venv, server.url + bundle_name())
        assert refused.returncode != 0 and "unexpected member" in refused.stderr
    finally:
        server.stop()
    assert not list(_site(venv).rglob("*.pyc"))
    assert not (tmp_path / "evil.pyc").exists()


def test_a_bundle_that_failed_is_a_404(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    server = WheelServer({}, {}, "127.0.0.1", lazy={bundle_name(): lambda: None})
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + bundle_name(), timeout=10)
        assert err.value.code == 404
    finally:
        server.stop()


def test_the_background_process_makes_the_bundle(tmp_path: Path) -> None:
    house = Wheelhouse(tmp_path / "wheels")
    wheel = _wheel(tmp_path, house, SOURCES)
    bytecode = ImageBytecode(tmp_path / "wheels" / "pyc-image")
    assert image_pyc.main([str(bytecode.root), SERIES, str(wheel)]) == 0
    assert bytecode.is_kept([wheel])
    first = bytecode.path_for([wheel]).read_bytes()
    assert image_pyc.main([str(bytecode.root), SERIES, str(wheel)]) == 0  # kept: not remade
    assert bytecode.path_for([wheel]).read_bytes() == first
    assert image_pyc.main([str(bytecode.root), "2.7", str(wheel)]) == 1
