"""Environments materialized as local venvs (real venv + pip; one small package)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.environments.venv_builder import MARKER, VenvMaterializer, venv_python
from jupyter_mlws.errors import BuildError, UnsupportedEnvironmentError


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("envs")
    m = VenvMaterializer(root, use_uv=False)
    spec = EnvironmentSpec(name="small", pip_requirements=["six==1.16.0"])
    # A temporary folder left by an interrupted build of this hash: cleaned, never used.
    stale = root / f".tmp-{spec.env_hash()}-1-deadbeef"
    (stale / "bin").mkdir(parents=True)
    return m, spec, m.build(spec, log=quiet), stale


def test_builds_a_venv_with_the_package(built):
    m, spec, result, stale = built
    path = m.path_for(spec)
    assert path.name == spec.env_hash() and result.image == str(path)
    assert (path / MARKER).is_file()
    assert not result.cached and result.builder == "venv"
    assert "six==1.16.0" in result.resolved_packages
    out = subprocess.run(
        [str(venv_python(path)), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1.16.0"
    assert not stale.exists()
    assert not list(path.parent.glob(".tmp-*"))


def test_renamed_venv_scripts_point_at_the_final_path(built):
    m, spec, _result, _stale = built
    path = m.path_for(spec)
    pip = path / "bin" / "pip"
    if not pip.exists():
        pytest.skip("no pip script in this venv")
    head = "\n".join(pip.read_text().splitlines()[:3])  # long paths get an exec trampoline
    assert str(venv_python(path)) in head and ".tmp-" not in head
    out = subprocess.run([str(pip), "--version"], capture_output=True, text=True, check=True)
    assert str(path) in out.stdout
    assert ".tmp-" not in (path / "pyvenv.cfg").read_text()


def test_second_lookup_is_a_fast_hit(built):
    m, spec, result, _stale = built
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        hit = m.lookup(spec)
        times.append(time.perf_counter() - t0)
        assert hit is not None and hit.cached
    assert statistics.median(times) < 0.05
    again = m.build(spec.model_copy(update={"name": "renamed"}), log=quiet)
    assert again.cached and again.image == result.image
    assert again.resolved_packages == result.resolved_packages


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"pip_requirements": ["six"], "docker_steps": ["RUN apt-get update"]}, "Docker steps"),
        (
            {"conda_file": {"dependencies": ["python=3.11", "pip", "r-base=4.3"]}},
            "r-base=4.3",
        ),
        ({"conda_file": {"dependencies": ["python=3.7", {"pip": ["six"]}]}}, "python=3.7"),
        ({"image": "myorg/app:1.0"}, "ready Docker image"),
    ],
)
def test_refuses_what_a_venv_cannot_hold(tmp_path: Path, fields: dict, words: str):
    m = VenvMaterializer(tmp_path, use_uv=False)
    spec = EnvironmentSpec(name="nope", **fields)
    with pytest.raises(UnsupportedEnvironmentError) as err:
        m.build(spec, log=quiet)
    assert words in str(err.value)
    assert not m.path_for(spec).exists()


def test_same_python_and_pip_in_conda_are_accepted(tmp_path: Path):
    v = sys.version_info
    conda = {"dependencies": [f"python={v.major}.{v.minor}", "pip", {"pip": ["six"]}]}
    spec = EnvironmentSpec(name="ok", conda_file=conda)
    assert VenvMaterializer(tmp_path, use_uv=False).check(spec) is None


def test_failed_build_leaves_no_finished_venv(tmp_path: Path):
    m = VenvMaterializer(tmp_path, use_uv=False)
    spec = EnvironmentSpec(
        name="broken", pip_requirements=["this-package-does-not-exist-mlws==0.0.1"]
    )
    with pytest.raises(BuildError) as err:
        m.build(spec, log=quiet)
    assert err.value.step == "pip download"  # fetched first, into the wheelhouse (then installed)
    assert "this-package-does-not-exist-mlws" in (err.value.log_tail or "")
    assert not m.path_for(spec).exists()
    assert not list(tmp_path.glob(".tmp-*"))
    assert m.lookup(spec) is None


def test_no_cache_makes_the_venv_again_in_place(tmp_path: Path):
    """Defect 15 (venv side): no_cache returned the cached venv without making anything."""
    m = VenvMaterializer(tmp_path, use_uv=False)
    spec = EnvironmentSpec(name="again", pip_requirements=["six==1.16.0"])
    first = m.build(spec, log=quiet)
    path = m.path_for(spec)
    (path / "left-by-a-job.txt").write_text("x")  # what a job might have written into it
    lines: list[str] = []
    second = m.build(spec, log=lines.append, no_cache=True)
    assert not second.cached and not any("Using the cached venv" in ln for ln in lines)
    assert any("pip install" in ln and "--no-cache-dir" in ln for ln in lines)
    assert not (path / "left-by-a-job.txt").exists() and (path / MARKER).is_file()
    assert second.replaced_image_id == first.image_id == str(path)
    assert "six==1.16.0" in second.resolved_packages
    out = subprocess.run([str(venv_python(path)), "-c", "import six; print(six.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1.16.0"
    assert not list(tmp_path.glob(".tmp-*"))  # the old venv is gone, not parked
    history = m.history(spec.env_hash())
    assert [h["no_cache"] for h in history] == [False, True]
    assert history[0]["built_at"] == first.built_at != history[1]["built_at"]
    hit = m.lookup(spec)
    assert hit is not None and hit.built_at == second.built_at
    assert m.build(spec, log=quiet).cached


def test_both_builders_are_builders_picked_by_name(tmp_path: Path):
    from jupyter_mlws.environments.builders import BUILDER_NAMES, Builder, builder_name
    from jupyter_mlws.environments.docker_builder import DockerBuilder
    from jupyter_mlws.errors import ValidationError

    docker_builder = DockerBuilder(lock_dir=tmp_path / "locks")  # no engine call yet
    venv_builder = VenvMaterializer(tmp_path / "envs", use_uv=False)
    for b in (docker_builder, venv_builder):
        assert isinstance(b, Builder)
    assert (docker_builder.name, venv_builder.name) == BUILDER_NAMES == ("docker", "venv")
    assert builder_name("venv") == "venv"
    with pytest.raises(ValidationError, match="docker or venv"):
        builder_name("conda")
