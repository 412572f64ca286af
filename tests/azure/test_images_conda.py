"""Docker Hub / Azure MCR Python images and conda files, built offline and run for real.

Azure-shaped YAML from ``specs/images`` (environment YAML with an Azure base image and a conda
file of conda-only pins, command jobs with ``image: python:3.x-slim``, a build context
``FROM python:3.11``) registered and run unedited with ``mlws`` on local (venv) and Docker
compute. The Docker tests need a real engine (and root for debootstrap when a base is missing:
the 3.13 base is made on demand, about 40 s); when CI is set and it is missing, they fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from jupyter_mlws import Workspace
from tests.azure.conftest import SPECS
from tests.azure.test_command_yaml import set_compute_map

IMAGES = SPECS / "images"


def run(mlws: Callable[..., Result], name: str, *extra: str, code: int = 0) -> tuple[dict, str]:
    """``mlws job create -f specs/images/NAME --wait -o json``: the job and its log."""
    result = mlws("job", "create", "-f", str(IMAGES / name), "--wait", "-o", "json", *extra,
                  code=code)
    job = json.loads(result.stdout)
    return job, mlws("job", "logs", job["id"]).output


def build_notes(mlws: Callable[..., Result], ref: str, builder: str) -> list[str]:
    """The notes the last ``builder`` build of ``ref`` recorded, as ``mlws env show`` gives them."""
    shown = json.loads(mlws("env", "show", ref, "-o", "json").stdout)
    state = shown[f"{builder}_build"]
    assert isinstance(state, dict) and state["status"] == "succeeded", state
    return list(state.get("notes") or [])


def set_setting(ws: Workspace, key: str, value: object) -> None:
    settings = ws.path / "workspace.yaml"
    data = yaml.safe_load(settings.read_text()) or {}
    data[key] = value
    settings.write_text(yaml.safe_dump(data))


@pytest.fixture
def box(cli_ws: Workspace) -> str:
    """A docker compute, with ``cpu-cluster`` mapped to it (the engine must run)."""
    from jupyter_mlws.docker_engine import docker_client

    try:
        docker_client().ping()
    except Exception as exc:  # noqa: BLE001 - any reason means: no engine here
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the Docker engine: {exc}")
        pytest.skip(f"no Docker engine here: {exc}")
    cli_ws.computes.create("box", type="docker", max_concurrent_jobs=1, cpus=1, memory="2g")
    return "box"


def test_azure_base_image_with_a_conda_file_runs_on_local_and_docker(  # type: ignore[no-untyped-def]
        mlws, cli_ws: Workspace, box: str) -> None:
    out = mlws("env", "create", "-f", str(IMAGES / "env-openmpi-conda.yml")).output
    assert "sklearn-openmpi-conda:1" in out
    env = cli_ws.environments.get("sklearn-openmpi-conda", "1")
    assert env.definition().image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
    # local: no compute named cpu-cluster, so a venv on this machine
    job, log = run(mlws, "command-conda-env.yml")
    assert job["status"] == "Completed" and job["compute"] == "local", log
    assert "numpy 1.26.4" in log and "sklearn 1.5.2" in log and "environment ok" in log
    assert "conda -> PyPI: numpy=1.26.4 -> numpy==1.26.4" in log
    assert "conda: dropped mkl (a system library" in log
    notes = build_notes(mlws, "sklearn-openmpi-conda:1", "venv")
    assert "conda -> PyPI: scikit-learn=1.5.2 -> scikit-learn==1.5.2" in notes
    assert any(n.startswith("conda: dropped _libgcc_mutex") for n in notes)
    # docker: the same YAML, cpu-cluster mapped to a docker compute
    set_compute_map(cli_ws, {"cpu-cluster": box})
    job, log = run(mlws, "command-conda-env.yml")
    assert job["status"] == "Completed" and job["compute"] == box, log
    assert "numpy 1.26.4" in log and "sklearn 1.5.2" in log
    notes = build_notes(mlws, "sklearn-openmpi-conda:1", "docker")
    assert ("image mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest (an Azure ML base "
            "image) -> mlws/base-python:3.11-bookworm") in notes
    assert "conda -> PyPI: numpy=1.26.4 -> numpy==1.26.4" in notes
    assert cli_ws.environments.get("sklearn-openmpi-conda", "1").env_hash == env.env_hash


def test_docker_hub_python_image_is_a_venv_locally_and_a_base_on_docker(  # type: ignore[no-untyped-def]
        mlws, cli_ws: Workspace, box: str) -> None:
    job, log = run(mlws, "command-python-slim.yml")
    assert job["status"] == "Completed" and job["compute"] == "local", log
    assert "python 3.11" in log and "environment ok" in log and "pip " in log
    assert "image python:3.11-slim (Docker Hub's python image) -> a venv of Python 3.11" in log
    set_compute_map(cli_ws, {"cpu-cluster": box})
    job, log = run(mlws, "command-python-slim.yml")
    assert job["status"] == "Completed" and job["compute"] == box, log
    assert "python 3.11 at /opt/mlws/venv/bin/python" in log and "pip " in log
    notes = build_notes(mlws, job["environment"], "docker")
    assert ("image python:3.11-slim (Docker Hub's python image) -> "
            "mlws/base-python:3.11-bookworm") in notes


def test_build_context_from_python_runs_on_docker(mlws, cli_ws: Workspace, box: str) -> None:  # type: ignore[no-untyped-def]
    mlws("env", "create", "-f", str(IMAGES / "env-context.yml"))
    set_compute_map(cli_ws, {"cpu-cluster": box})
    job, log = run(mlws, "command-context-env.yml")
    assert job["status"] == "Completed", log
    assert "six 1.16.0" in log and "made from the build context" in log
    notes = build_notes(mlws, "from-python-311:1", "docker")
    assert ("FROM python:3.11 (Docker Hub's python image) -> "
            "FROM mlws/base-python-venv:3.11-bookworm") in notes


def test_python_313_image_gets_its_base_made_on_demand(  # type: ignore[no-untyped-def]
        mlws, cli_ws: Workspace, box: str) -> None:
    set_compute_map(cli_ws, {"cpu-cluster": box})
    job, log = run(mlws, "command-python313.yml")
    assert job["status"] == "Completed", log
    assert "python 3.13 at /opt/mlws/venv/bin/python" in log and "environment ok" in log
    notes = build_notes(mlws, job["environment"], "docker")  # also when the image was cached
    assert ("image docker.io/library/python:3.13-slim-bookworm (Docker Hub's python image) -> "
            "mlws/base-python:3.13-trixie") in notes
    out = mlws("image", "bootstrap", "--python", "3.13").output
    # made above (or, on a machine that kept a base of an older recipe, remade now) ...
    assert ("mlws/base-python:3.13-trixie: already there" in out
            or "present but made from another recipe; remaking it" in out), out
    out = mlws("image", "bootstrap", "--python", "3.13").output  # ... and then current
    assert "mlws/base-python:3.13-trixie: already there" in out


def test_missing_python_names_the_versions_and_the_setting(  # type: ignore[no-untyped-def]
        mlws, cli_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_ENVS_DIR", str(tmp_path / "envs"))  # no venv of an earlier run
    monkeypatch.delenv("MLWS_PYTHON_FALLBACK", raising=False)
    job, log = run(mlws, "command-python312.yml", code=1)
    assert job["status"] == "Failed"
    error = job["error"]
    assert error.startswith("The image python:3.12-slim asks for Python 3.12, which this "
                            "machine"), error
    assert "there is Python 3.11" in error or "there are Python" in error
    assert "`python_fallback: nearest` in workspace.yaml" in error
    assert "MLWS_PYTHON_FALLBACK=nearest" in error and "Traceback" not in log


def test_python_fallback_nearest_is_used_and_recorded(  # type: ignore[no-untyped-def]
        mlws, cli_ws: Workspace, box: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_ENVS_DIR", str(tmp_path / "envs"))
    monkeypatch.setenv("MLWS_PYTHON_FALLBACK", "nearest")
    job, log = run(mlws, "command-python312.yml")  # local: a venv of the nearest interpreter
    assert job["status"] == "Completed", log
    notes = build_notes(mlws, job["environment"], "venv")
    assert any(n.startswith("Python: python=3.12 asked") for n in notes), notes
    monkeypatch.delenv("MLWS_PYTHON_FALLBACK")
    set_setting(cli_ws, "python_fallback", "nearest")  # the workspace setting does the same
    set_compute_map(cli_ws, {"cpu-cluster": box})
    job, log = run(mlws, "command-python312.yml")
    assert job["status"] == "Completed", log
    assert "python 3.13 at" in log
    note = ("Python: python=3.12 asked, which is not available; 3.13 used "
            "(the nearest; python_fallback: nearest)")
    assert note in build_notes(mlws, job["environment"], "docker")


def test_conda_packages_without_pypi_equivalent_are_named(mlws, cli_ws: Workspace,  # type: ignore[no-untyped-def]
                                                        box: str) -> None:
    mlws("env", "create", "-f", str(IMAGES / "env-conda-no-pypi.yml"))
    for builder in ("venv", "docker"):
        out = mlws("env", "build", "conda-no-pypi", "--builder", builder, code=1).output
        assert "These conda dependencies have no PyPI equivalent" in out
        assert "r-base=4.3 (exists only on conda)" in out
        assert ("mlws-conda-only-package-that-pypi-lacks=1.0 (the package index has no "
                "'mlws-conda-only-package-that-pypi-lacks')") in out
        assert "six" not in out and "python=3.11" not in out
        assert "`pip:` list, or remove it" in out and "Traceback" not in out
