"""The conda -> PyPI translation table and the Python image mapping (pure functions, no engine)."""

from __future__ import annotations

import pytest

from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.environments.build_plan import plan_build
from jupyter_mlws.environments.conda_pypi import conda_version_to_pip, translate_conda
from jupyter_mlws.environments.image_map import (
    choose_python,
    fallback_allowed,
    map_image,
    python_venv_image,
    rewrite_from_lines,
)
from jupyter_mlws.errors import CondaTranslationError, PythonUnavailableError, ValidationError

BASES = ["3.9", "3.11", "3.13"]


@pytest.mark.parametrize(("dep", "req"), [
    ("numpy=2.3.1", "numpy==2.3.1"),
    ("numpy=1.26", "numpy==1.26.*"),
    ("numpy==1.26.4", "numpy==1.26.4"),
    ("scikit-learn=1.7.0", "scikit-learn==1.7.0"),
    ("pandas", "pandas"),
    ("pandas>=2.0,<3", "pandas>=2.0,<3"),
    ("numpy 1.26.*", "numpy==1.26.*"),
    ("numpy=1.26.4=py311h64a7726_0", "numpy==1.26.4"),
    ("numpy 1.26.4 py311_0", "numpy==1.26.4"),
    ("conda-forge::numpy=1.26.4", "numpy==1.26.4"),
    ("conda-forge/linux-64::scipy>=1.11", "scipy>=1.11"),
    ("numpy[version='>=1.22,<2']", "numpy>=1.22,<2"),
    ("pytorch=2.3.1", "torch==2.3.1"),
    ("pytorch-cpu", "torch"),
    ("py-xgboost=2.0.3", "xgboost==2.0.3"),
    ("tensorflow-cpu=2.15", "tensorflow-cpu==2.15.*"),
    ("python-graphviz", "graphviz"),
    ("PyYAML=6.0.1", "pyyaml==6.0.1"),
    ("matplotlib-base=3.8", "matplotlib==3.8.*"),
    ("msgpack-python", "msgpack"),
])
def test_conda_dependencies_become_pypi_requirements(dep: str, req: str) -> None:
    out = translate_conda({"dependencies": [dep]})
    assert out.requirements == [req]
    assert out.from_conda == [req]


def test_python_pip_and_the_pip_list() -> None:
    out = translate_conda({"channels": ["conda-forge"], "dependencies": [
        "python=3.11", "pip", "numpy=1.26.4", {"pip": ["mlflow==2.14.1", "six"]}]})
    assert out.python == "python=3.11"
    assert out.requirements == ["numpy==1.26.4", "mlflow==2.14.1", "six"]
    assert out.from_conda == ["numpy==1.26.4"]
    assert out.notes == ["conda -> PyPI: numpy=1.26.4 -> numpy==1.26.4",
                         "conda: channels conda-forge not used; the conda dependencies above "
                         "come from the machine's PyPI index"]


@pytest.mark.parametrize("dep", ["mkl", "libgcc-ng", "_libgcc_mutex", "_openmp_mutex=4.5",
                                 "ld_impl_linux-64", "openssl=3.0", "cudatoolkit=11.8",
                                 "cudnn", "cuda-nvcc", "libcublas", "cpuonly", "graphviz"])
def test_system_and_gpu_libraries_are_dropped_with_a_note(dep: str) -> None:
    out = translate_conda({"dependencies": ["numpy", dep]})
    assert out.requirements == ["numpy"]
    assert out.dropped and out.dropped[0][0] == dep
    assert any(note.startswith(f"conda: dropped {dep} (") for note in out.notes)


def test_conda_only_packages_are_all_named() -> None:
    with pytest.raises(CondaTranslationError) as err:
        translate_conda({"dependencies": ["numpy", "r-base=4.3", "r-ggplot2", "conda-build",
                                          "scipy"]})
    text = str(err.value)
    for name in ("r-base=4.3", "r-ggplot2", "conda-build"):
        assert name in text
    assert "numpy" not in text.split("equivalent")[1].split("Replace")[0].replace("r-", "")
    assert "pip:" in text and "remove" in text


def test_either_or_versions_cannot_be_written_for_pip() -> None:
    with pytest.raises(CondaTranslationError, match=r"numpy 1\.2\|1\.4"):
        translate_conda({"dependencies": ["numpy 1.2|1.4"]})
    assert conda_version_to_pip("*") == ""


@pytest.mark.parametrize(("ref", "python", "origin"), [
    ("python", None, "Docker Hub"),
    ("python:3.11-slim", "3.11", "Docker Hub"),
    ("python:3.9.18-bullseye", "3.9.18", "Docker Hub"),
    ("docker.io/python:3.13", "3.13", "Docker Hub"),
    ("docker.io/library/python:3.12-slim-bookworm", "3.12", "Docker Hub"),
    ("library/python:3.8", "3.8", "Docker Hub"),
    ("python:3", None, "Docker Hub"),
    ("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest", None, "Azure ML base"),
    ("mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04", None, "Azure ML base"),
    ("mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest", "3.9",
     "Azure ML base"),
    ("mcr.microsoft.com/azureml/minimal-ubuntu20.04-py38-cpu-inference", "3.8", "Azure ML base"),
    ("mcr.microsoft.com/azureml/curated/minimal-py311-inference:latest", "3.11",
     "Azure ML curated"),
    ("mcr.microsoft.com/azureml/curated/sklearn-1.5:23", None, "Azure ML curated"),
])
def test_python_images_map_to_offline_bases(ref: str, python: str | None, origin: str) -> None:
    m = map_image(ref)
    assert m is not None and m.python == python and origin in m.origin


@pytest.mark.parametrize("ref", ["ubuntu:22.04", "myorg/python:3.11", "ghcr.io/x/python:3",
                                 "pythonista:1", "mcr.microsoft.com/dotnet/sdk:8.0"])
def test_other_images_are_not_mapped(ref: str) -> None:
    assert map_image(ref) is None


def test_choose_python_exact_nearest_and_the_error() -> None:
    assert choose_python(None, BASES, default="3.11", allow_nearest=False, where="x").version \
        == "3.11"
    assert choose_python("python=3.9", BASES, default="3.11", allow_nearest=False,
                         where="x").version == "3.9"
    assert choose_python("python=3.11.4", BASES, default="3.11", allow_nearest=False,
                         where="x").version == "3.11"
    assert choose_python("python>=3.10", BASES, default="3.11", allow_nearest=False,
                         where="x").version == "3.11"
    assert choose_python("python<3.11", BASES, default="3.11", allow_nearest=False,
                         where="x").version == "3.9"
    with pytest.raises(PythonUnavailableError) as err:
        choose_python("python=3.12", BASES, default="3.11", allow_nearest=False,
                      where="this machine's offline bases")
    text = str(err.value)
    assert "Python 3.12" in text and "Python 3.9, 3.11, 3.13" in text
    assert "python_fallback: nearest" in text and "MLWS_PYTHON_FALLBACK=nearest" in text
    near = choose_python("python=3.12", BASES, default="3.11", allow_nearest=True, where="x")
    assert near.version == "3.13" and near.nearest
    assert "3.13 used" in (near.note() or "") and "nearest" in (near.note() or "")
    assert choose_python("python=3.8", BASES, default="3.11", allow_nearest=True,
                         where="x").version == "3.9"
    assert choose_python("python=3.10", BASES, default="3.11", allow_nearest=True,
                         where="x").version == "3.11"
    with pytest.raises(PythonUnavailableError, match="Python 2 has no stand-in"):
        choose_python("python=2.7", BASES, default="3.11", allow_nearest=True, where="x")


def test_fallback_setting_and_environment_variable() -> None:
    assert not fallback_allowed(None, {})
    assert fallback_allowed("nearest", {})
    assert fallback_allowed(None, {"MLWS_PYTHON_FALLBACK": "nearest"})
    assert not fallback_allowed("nearest", {"MLWS_PYTHON_FALLBACK": "exact"})
    with pytest.raises(ValidationError, match="exact or nearest"):
        fallback_allowed(None, {"MLWS_PYTHON_FALLBACK": "closest"})


def test_from_lines_are_rewritten_but_not_stage_names() -> None:
    text = ("FROM python:3.11 AS python\nRUN pip install six\n"
            "FROM --platform=linux/amd64 python\nCOPY --from=python /x /x\n"
            "FROM ubuntu:22.04\nFROM python:${PY}\nFROM mlws/base-python:3.11-bookworm\n")
    new, done = rewrite_from_lines(text, lambda m: python_venv_image("3.11"))
    assert new.splitlines()[0] == "FROM mlws/base-python-venv:3.11-bookworm AS python"
    assert new.splitlines()[2] == "FROM --platform=linux/amd64 python"  # the stage, not the image
    assert "FROM ubuntu:22.04" in new and "FROM python:${PY}" in new
    assert new.endswith("FROM mlws/base-python:3.11-bookworm\n")  # an offline base stays
    assert [m.image for m, _ in done] == ["python:3.11"]


def test_the_plan_does_not_touch_the_hash() -> None:
    conda = {"dependencies": ["python=3.9", "pip", "numpy=1.26.4", "mkl",
                              {"pip": ["six==1.16.0"]}]}
    spec = EnvironmentSpec(name="azure", conda_file=conda,
                           image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest")
    before = spec.env_hash()
    plan = plan_build(spec)
    assert spec.env_hash() == before
    assert plan.base == "mlws/base-python:3.9-bullseye"
    assert plan.requirements == ["numpy==1.26.4", "six==1.16.0"]
    assert any("openmpi4.1.0-ubuntu22.04" in n and "mlws/base-python:3.9-bullseye" in n
               for n in plan.notes)
    assert any("dropped mkl" in n for n in plan.notes)


def test_bootstrap_makes_the_default_base_unless_told() -> None:
    from jupyter_mlws.environments.bootstrap import BASE_IMAGES, wanted_images
    from jupyter_mlws.errors import BuildError

    assert wanted_images([], [], False) == ["mlws/base-python:3.11-bookworm"]
    assert wanted_images([], ["3.13", "3.9"], False) == ["mlws/base-python:3.13-trixie",
                                                        "mlws/base-python:3.9-bullseye"]
    assert wanted_images([], [], True) == list(BASE_IMAGES) and len(BASE_IMAGES) == 3
    with pytest.raises(BuildError, match="no offline base for Python 3.12"):
        wanted_images([], ["3.12"], False)
