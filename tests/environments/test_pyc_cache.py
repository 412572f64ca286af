"""The bytecode cache of venv builds (real venvs, real pip/uv, packages from the machine's index):
a venv rebuilt from its lock copies its packages' checked-hash bytecode instead of compiling it."""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import re
import subprocess
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.environments.dockerfile import COMPILE_SKIP
from jupyter_mlws.environments.pyc_cache import (
    PASS_LOCK,
    compile_in_background,
    compile_venv,
    wait_for_bytecode,
)
from jupyter_mlws.environments.uv_tool import find_uv
from jupyter_mlws.environments.venv_builder import (
    BYTECODE_ENV,
    VenvMaterializer,
    venv_python,
)
from jupyter_mlws.errors import ValidationError

PACKAGES = ["six", "idna"]
_LINE = re.compile(r"^bytecode: (\d+) packages from the cache, (\d+) compiled$")
#: Imports every module of the packages (and pip's command line, a package of every venv).
_IMPORT = ("import importlib, pkgutil, six, idna, pip._internal.cli.main\n"
           "for m in pkgutil.walk_packages(idna.__path__, 'idna.'):\n"
           "    importlib.import_module(m.name)\n"
           "print('imported')")


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed")
    pytest.skip(f"{what} is not installed")


def _builder(tmp_path: Path, name: str = "envs", tool: str | None = None) -> VenvMaterializer:
    """A venv builder under ``tmp_path/name`` whose wheelhouse (and bytecode cache) is
    ``tmp_path/wheels``, shared by every builder of the test."""
    if tool == "uv" and find_uv() is None:
        _missing("uv (pip install 'jupyter-mlws[uv]')")
    use_uv = None if tool is None else tool == "uv"
    return VenvMaterializer(tmp_path / name, use_uv=use_uv, wheelhouse=tmp_path / "wheels")


def _build(m: VenvMaterializer, spec: EnvironmentSpec, lock: str | None = None,
           **kw: bool) -> tuple[Path, list[str], tuple[int, int]]:
    """Build ``spec`` (from ``lock`` when given): its path, its log, and its bytecode line's
    ``(from the cache, compiled)``."""
    lines: list[str] = []
    result = m.build(spec, log=lines.append, lock_for=(lambda _py: lock) if lock else None, **kw)
    assert not result.cached and result.from_lock == bool(lock)
    # the build left the bytecode to its background pass: its log has the pass's lines
    assert any(ln.startswith("bytecode: compiled in the background") for ln in lines), lines
    lines = [ln for ln in lines if not ln.startswith("bytecode: compiled in the background")]
    done = wait_for_bytecode(Path(result.image), 120)
    assert done is not None, "the bytecode pass did not end"
    lines += done
    found = [_LINE.match(ln) for ln in lines if ln.startswith("bytecode:")]
    assert len(found) == 1 and found[0] is not None, lines
    return Path(result.image), lines, (int(found[0][1]), int(found[0][2]))


def _site(venv: Path) -> Path:
    (site,) = (venv / "lib").glob("python3*/site-packages")
    return site


def _pycs(venv: Path) -> dict[str, bytes]:
    """The bytecode the builder made (not that of the packages' tests, which it skips:
    ``python -m venv`` compiles pip's own)."""
    site = _site(venv)
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*.pyc")
            if not re.search(COMPILE_SKIP, str(p))}


def _snapshot(venv: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _dirs, names in os.walk(venv):
        for name in names:
            info = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (info.st_size, info.st_mtime_ns)
    return out


def _import_writes(venv: Path) -> list[str]:
    """Import the packages in the venv with bytecode writing on; the files that changed."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    before = _snapshot(venv)
    out = subprocess.run([str(venv_python(venv)), "-c", _IMPORT], capture_output=True,
                         text=True, env=env, check=True)
    assert out.stdout.strip() == "imported"
    after = _snapshot(venv)
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def _entries(m: VenvMaterializer) -> dict[str, Path]:
    """The cache entries, by a ``.pyc`` each holds (``{pyc relative path: entry folder}``)."""
    out = {}
    for manifest in m.wheelhouse.bytecode.root.glob("*/*/*/manifest.json"):
        for rel in json.loads(manifest.read_text())["files"]:
            out[rel] = manifest.parent
    return out


def _entry_of(m: VenvMaterializer, rel_prefix: str) -> tuple[Path, str]:
    """The entry holding a ``.pyc`` under ``rel_prefix`` and that file's relative path."""
    rel, entry = next((r, e) for r, e in sorted(_entries(m).items()) if r.startswith(rel_prefix))
    return entry, rel


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_rebuild_from_the_lock_copies_identical_checked_hash_bytecode(tmp_path: Path,
                                                                     tool: str) -> None:
    m = _builder(tmp_path, tool=tool)
    spec = EnvironmentSpec(name="pyc", pip_requirements=PACKAGES)
    path, _lines, (hits, compiled) = _build(m, spec)
    assert hits == 0 and compiled >= 3  # pip, six, idna (and what the venv seeds)
    first = _pycs(path)
    assert any(rel.startswith("idna/__pycache__/core.") for rel in first)
    # pip's bytecode (compiled while the packages were fetched) is complete and checked-hash
    assert any(rel.startswith("pip/_internal/cli/__pycache__/main.") for rel in first)
    assert _import_writes(path) == []
    lock = m.lookup(spec).lock  # type: ignore[union-attr]
    assert m.remove(spec)

    again, _lines, (hits2, compiled2) = _build(m, spec, lock)
    assert again == path
    assert (hits2, compiled2) == (compiled, 0)  # every package's bytecode from the cache
    second = _pycs(again)
    assert second == first  # byte-identical
    assert {data[4:8] for data in second.values()} == {(3).to_bytes(4, "little")}  # checked-hash
    assert _import_writes(again) == []  # nothing compiled or written on import


def test_cached_bytecode_names_the_venv_it_runs_in(tmp_path: Path) -> None:
    spec = EnvironmentSpec(name="pyc-tb", pip_requirements=PACKAGES)
    a = _builder(tmp_path, "envs-a", tool="pip")
    path_a, _lines, _counts = _build(a, spec)
    lock = a.lookup(spec).lock  # type: ignore[union-attr]
    # another root (another user folder, the other installer): the same packages' bytecode
    b = _builder(tmp_path, "envs-b", tool="uv" if find_uv() else "pip")
    path_b, _lines, (hits, _compiled) = _build(b, spec, lock)
    assert path_b != path_a and hits >= 2
    rel = next(r for r in _pycs(path_b) if r.startswith("idna/__pycache__/core."))
    data = (_site(path_b) / rel).read_bytes()
    assert data == (_site(path_a) / rel).read_bytes()  # copied from the cache...
    code = marshal.loads(data[16:])
    assert code.co_filename == str(_site(path_a) / "idna" / "core.py")  # ...compiled for a

    out = subprocess.run([str(venv_python(path_b)), "-c", "import idna; idna.alabel('a' * 70)"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "IDNAError" in out.stderr
    assert f'File "{_site(path_b) / "idna" / "core.py"}"' in out.stderr  # b's real path
    assert str(path_a) not in out.stderr


def test_a_damaged_entry_is_dropped_and_compiled_again(tmp_path: Path) -> None:
    m = _builder(tmp_path)
    spec = EnvironmentSpec(name="pyc-damaged", pip_requirements=PACKAGES)
    path, _lines, (_hits, compiled) = _build(m, spec)
    lock = m.lookup(spec).lock  # type: ignore[union-attr]
    idna_entry, idna_rel = _entry_of(m, "idna/__pycache__/core.")
    damaged = idna_entry / idna_rel
    damaged.write_bytes(damaged.read_bytes()[:-4] + b"0000")  # changed bytes in the cache
    six_entry, six_rel = _entry_of(m, "__pycache__/six.")
    outside = tmp_path / "elsewhere.pyc"
    outside.write_bytes((six_entry / six_rel).read_bytes())  # the same bytes: sha256 matches
    (six_entry / six_rel).unlink()
    (six_entry / six_rel).symlink_to(outside)  # a link planted in the entry
    assert m.remove(spec)

    again, lines, (hits, compiled2) = _build(m, spec, lock)
    assert (hits, compiled2) == (compiled - 2, 2)
    notes = [ln for ln in lines if "bytecode cache entry" in ln]
    assert len(notes) == 2 and all("was damaged" in ln for ln in notes), notes
    assert any(ln.startswith("note: the bytecode cache entry of idna-") and "sha256" in ln
               for ln in notes)
    assert any(ln.startswith("note: the bytecode cache entry of six-") for ln in notes)
    assert outside.read_bytes() == (_site(again) / six_rel).read_bytes()  # left as it was
    assert not (_site(again) / six_rel).is_symlink()
    assert _import_writes(again) == []
    # the entries were made again from the fresh bytecode: a third build takes everything
    for entry, rel in ((idna_entry, idna_rel), (six_entry, six_rel)):
        assert not (entry / rel).is_symlink()
        assert (entry / rel).read_bytes() == (_site(again) / rel).read_bytes()
    assert m.remove(spec)
    _again, _lines, counts = _build(m, spec, lock)
    assert counts == (compiled, 0)


def test_an_entry_is_kept_as_links_and_a_job_writing_its_venvs_bytecode_reaches_no_other_venv(
        tmp_path: Path) -> None:
    """An entry's files are hard links to the bytecode its build wrote (not written again);
    a job that then writes into its venv's ``.pyc`` in place changes the entry too, and the
    next build that would take it finds the sha256 changed, compiles its own, and the other
    venv never sees the job's bytes."""
    a = _builder(tmp_path, "envs-a", tool="pip")
    spec = EnvironmentSpec(name="pyc-links", pip_requirements=PACKAGES)
    path_a, _lines, _counts = _build(a, spec)
    entry, rel = _entry_of(a, "idna/__pycache__/core.")
    pyc_a = _site(path_a) / rel
    assert os.stat(entry / rel).st_ino == os.stat(pyc_a).st_ino
    with open(pyc_a, "r+b") as f:  # what a careless job may do: write through the file
        f.seek(-4, os.SEEK_END)
        f.write(b"\0job")
    lock = a.lookup(spec).lock  # type: ignore[union-attr]

    b = _builder(tmp_path, "envs-b", tool="pip")
    path_b, lines, (hits, compiled) = _build(b, spec, lock)
    assert compiled == 1 and hits >= 2, lines  # idna compiled again; six and pip taken
    assert any(ln.startswith("note: the bytecode cache entry of idna-") and "sha256" in ln
               for ln in lines)
    pyc_b = _site(path_b) / rel
    assert pyc_b.read_bytes() != pyc_a.read_bytes() and not pyc_b.read_bytes().endswith(b"\0job")
    assert os.stat(pyc_b).st_ino != os.stat(pyc_a).st_ino
    assert _import_writes(path_b) == []


def test_no_cache_build_does_not_read_the_cache_but_fills_it(tmp_path: Path) -> None:
    m = _builder(tmp_path)
    spec = EnvironmentSpec(name="pyc-nocache", pip_requirements=PACKAGES)
    _path, _lines, (_hits, compiled) = _build(m, spec)
    entries = sorted(set(_entries(m).values()))
    assert len(entries) == compiled
    manifests = {e: hashlib.sha256((e / "manifest.json").read_bytes()).hexdigest()
                 for e in entries}
    for rel, entry in _entries(m).items():  # every cached pyc damaged: a read would notice
        (entry / rel).write_bytes(b"not bytecode")

    again, lines, counts = _build(m, spec, no_cache=True)
    assert counts == (0, compiled)
    assert not any("bytecode cache entry" in ln for ln in lines)
    assert all((e / "manifest.json").is_file() for e in entries)  # not read, so not dropped
    assert {e: hashlib.sha256((e / "manifest.json").read_bytes()).hexdigest()
            for e in entries} == manifests
    assert _import_writes(again) == []

    import shutil

    shutil.rmtree(m.wheelhouse.bytecode.root)
    _again, _lines, counts = _build(m, spec, no_cache=True)
    assert counts == (0, compiled)
    assert len(set(_entries(m).values())) == compiled  # filled


def test_clearing_the_wheelhouse_clears_the_bytecode_cache(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    # (bytecode in the build, as MLWS_VENV_BYTECODE=build asks: its line is in the build's log)
    monkeypatch.setenv(BYTECODE_ENV, "build")
    env = ws.environments.create("pyc-clear", pip_requirements=["six>=1.2", "idna>=2.1"])
    venvs = ws.environments.builder("venv")
    venvs.remove(env.definition())
    lines: list[str] = []
    ws.environments.build("pyc-clear", builder="venv", log=lines.append)
    assert any(_LINE.match(ln) for ln in lines)
    cache = venvs.wheelhouse.bytecode.root
    kept = [p for p in cache.rglob("*") if p.is_file()]
    assert len(kept) > 3 and any(p.name == "manifest.json" for p in kept)
    others = [p for p in venvs.wheelhouse.root.rglob("*")
              if p.is_file() and cache not in p.parents]
    files, size = ws.environments.clear_wheelhouse(dry_run=True)
    assert files == len(kept) + len(others)  # counted with the wheelhouse's files
    assert size >= sum(p.stat().st_size for p in kept)

    files, _size = ws.environments.clear_wheelhouse()  # what `mlws env prune --wheels` does
    assert files == len(kept) + len(others)
    assert not cache.exists()
    assert venvs.remove(env.definition())
    lines.clear()
    ws.environments.build("pyc-clear", builder="venv", log=lines.append)
    (line,) = [m for m in map(_LINE.match, lines) if m]
    assert line[1] == "0" and int(line[2]) >= 3  # nothing left to take: compiled again


def test_a_package_whose_record_has_no_hash_is_compiled_not_kept(tmp_path: Path) -> None:
    m = _builder(tmp_path)
    spec = EnvironmentSpec(name="pyc-nohash", pip_requirements=PACKAGES)
    path, _lines, (_hits, compiled) = _build(m, spec)
    site = _site(path)
    (record,) = site.glob("six-*.dist-info/RECORD")
    rows = [",".join([row.split(",")[0], "", ""]) if row.startswith("six.py,") else row
            for row in record.read_text().splitlines()]
    record.write_text("\n".join(rows) + "\n")  # as an installer that recorded no hash
    for pyc in site.rglob("*.pyc"):
        if not re.search(COMPILE_SKIP, str(pyc)):
            pyc.unlink()
    entries = set(_entries(m).values())

    done = compile_venv(venv_python(path), path, path, m.wheelhouse.bytecode)
    assert [name.split("-")[0] for name in done.compiled] == ["six"]
    assert len(done.cached) == compiled - 1
    assert set(_entries(m).values()) == entries  # nothing kept for it
    assert (site / "__pycache__").is_dir() and _import_writes(path) == []


def test_bytecode_a_job_wrote_beside_the_pass_is_never_kept(tmp_path: Path) -> None:
    """A job that imported a module while the pass ran may have replaced its checked-hash
    ``.pyc`` with a timestamp one of its own: the pass keeps no entry of that package."""
    import py_compile

    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    source = site / "pkg" / "mod.py"
    source.write_text("VALUE = 1\n")
    cache = VenvMaterializer(tmp_path / "envs", wheelhouse=tmp_path / "wheels").wheelhouse.bytecode
    pyc = "pkg/__pycache__/mod.pyc"
    for mode, kept in ((py_compile.PycInvalidationMode.TIMESTAMP, False),
                       (py_compile.PycInvalidationMode.CHECKED_HASH, True)):
        py_compile.compile(str(source), str(site / pyc), invalidation_mode=mode)
        key = f"key-{mode.name.lower()}"
        assert cache.store("tag", key, site, [pyc]) is kept
        assert cache.entry("tag", key).exists() is kept
    assert not list(cache.root.glob("tag/*/.tmp-*"))  # nothing half-written left


def test_a_rebuild_waits_for_the_old_venvs_bytecode_pass(tmp_path: Path) -> None:
    """The pass works by path: a rebuild moves the old venv away only once its pass ended."""
    import fcntl
    import threading
    import time

    m = _builder(tmp_path)
    spec = EnvironmentSpec(name="pyc-wait", pip_requirements=["six==1.16.0"])
    path, _lines, _counts = _build(m, spec)
    cfg = (path / "pyvenv.cfg").stat().st_ino
    fd = os.open(path / PASS_LOCK, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a pass that still runs
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            m.build(spec, log=lambda _line: None, no_cache=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=rebuild)
    try:
        worker.start()
        deadline = time.monotonic() + 120
        while not list(m.root.glob(".tmp-*/.mlws-venv.json")):  # built, about to swap
            assert worker.is_alive() and time.monotonic() < deadline, errors
            time.sleep(0.05)
        time.sleep(1.0)
        assert worker.is_alive() and (path / "pyvenv.cfg").stat().st_ino == cfg
    finally:
        os.close(fd)
    worker.join(120)
    assert not worker.is_alive() and not errors, errors
    assert (path / "pyvenv.cfg").stat().st_ino != cfg  # swapped once the pass had ended
    assert wait_for_bytecode(path, 120) is not None


def test_an_unknown_bytecode_mode_is_refused_before_anything_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BYTECODE_ENV, "later")
    m = _builder(tmp_path)
    spec = EnvironmentSpec(name="pyc-mode", pip_requirements=["six==1.16.0"])
    with pytest.raises(ValidationError) as err:
        m.build(spec, log=lambda _line: None)
    assert "MLWS_VENV_BYTECODE='later'" in err.value.message
    assert "background" in (err.value.hint or "") and "build" in (err.value.hint or "")
    assert not m.path_for(spec).exists() and not list(m.root.glob(".tmp-*"))


def test_the_bytecode_pass_runs_without_the_workspace_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass starts the venv's interpreter, which runs the packages' ``.pth`` files: the
    workspace's secret key is not in its environment."""
    m = _builder(tmp_path)
    spec = EnvironmentSpec(name="pyc-key", pip_requirements=["six==1.16.0"])
    path, _lines, _counts = _build(m, spec)
    seen = tmp_path / "seen.txt"
    (_site(path) / "zz_probe.pth").write_text(
        f"import os; open({str(seen)!r}, 'a').write(os.environ.get('MLWS_SECRET_KEY', "
        "'absent') + chr(10))\n")
    monkeypatch.setenv("MLWS_SECRET_KEY", "k" * 44)
    compile_in_background(venv_python(path), path, m.wheelhouse.bytecode)
    assert wait_for_bytecode(path, 120) is not None
    assert seen.read_text().split() and set(seen.read_text().split()) == {"absent"}


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_package_build_runs_without_the_workspace_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str) -> None:
    """Building a package from source runs its own code (``setup.py``): the workspace's secret
    key is not in its environment."""
    project = tmp_path / "keyprobe"
    project.mkdir()
    seen = tmp_path / "seen.txt"
    (project / "setup.py").write_text(
        "import os\n"
        f"open({str(seen)!r}, 'a').write(os.environ.get('MLWS_SECRET_KEY', 'absent') + chr(10))\n"
        "from setuptools import setup\nsetup(name='keyprobe', version='0.1', py_modules=[])\n")
    monkeypatch.setenv("MLWS_SECRET_KEY", "k" * 44)
    m = _builder(tmp_path, tool=tool)
    spec = EnvironmentSpec(name="key-build", pip_requirements=[f"keyprobe @ {project.as_uri()}"])
    m.build(spec, log=lambda _line: None)
    assert seen.read_text().split() and set(seen.read_text().split()) == {"absent"}
