"""Environment identity: what counts in the hash, what does not, and golden values."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.assets.yaml_io import parse_yaml
from jupyter_mlws.environments.identity import image_name, normalize_requirement


def env(**fields: object) -> EnvironmentSpec:
    return EnvironmentSpec.model_validate({"name": "e", **fields})


# Golden hashes: if one of these changes, every cached image of every user is orphaned.
# Change them only together with CANONICAL_VERSION, deliberately.
GOLDEN = [
    (
        {"image": "mlws/base-python:3.11-bookworm",
         "pip_requirements": ["ipykernel==7.4.0", "papermill==2.7.0"]},
        "b91f6d7f985ef8116f8db24fd5874c912147acd90834aa80ae3b0c7883dbc3e7",
    ),
    (
        {"image": "python:3.11-slim"},
        "25240cc6b61416fb4a3fc6627b9bdda96158b424dee060f51cb6e17e389d1bad",
    ),
    (
        {"image": "ubuntu:22.04",
         "conda_file": {"name": "x", "channels": ["conda-forge"],
                        "dependencies": ["python=3.11", "pip", {"pip": ["numpy==1.26.4"]}]},
         "docker_steps": ["RUN apt-get update && apt-get install -y git"]},
        "85843456b0dc0fb77b21f8c5fdb05efd8ebdbdba2e24773c8e08dfef121b87f2",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), GOLDEN)
def test_golden_hashes_do_not_drift(fields: dict[str, object], expected: str) -> None:
    assert env(**fields).env_hash() == expected


def test_canonical_form_is_the_documented_one() -> None:
    form = env(image="b", pip_requirements=["Six == 1.16.0"], docker_steps=["RUN x"]).canonical()
    assert form == {"v": 1, "base": {"image": "b"}, "steps": ["RUN x"], "conda": None,
                    "pip": ["six==1.16.0"]}


def test_image_name_is_32_hex_of_the_hash() -> None:
    h = env(image="x", pip_requirements=["six"]).env_hash()
    assert image_name(h) == "mlws/mlws_" + h[:32]
    assert env(image="x", pip_requirements=["six"]).image_name() == image_name(h)


def test_name_version_description_tags_and_env_vars_do_not_count() -> None:
    a = env(image="b", pip_requirements=["six==1.16.0"])
    b = EnvironmentSpec(name="other", version="7", description="d", tags={"t": "1"},
                        image="b", pip_requirements=["six==1.16.0"],
                        environment_variables={"A": "1"})
    assert a.env_hash() == b.env_hash()


def test_yaml_formatting_does_not_count() -> None:
    one, _ = parse_yaml("""
name: a   # a comment
image: base
conda_file:
  channels: [conda-forge]
  dependencies:
    - python=3.11
    - pip:
        - numpy==1.26
""")
    two, _ = parse_yaml("""
conda_file: {dependencies: ["python=3.11", {pip: ["numpy == 1.26"]}], channels: [conda-forge]}
image:    base
name: b
""")
    assert env(**{k: v for k, v in one.items() if k != "name"}).env_hash() == env(
        **{k: v for k, v in two.items() if k != "name"}).env_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"pip_requirements": ["numpy==1.26", "six==1.16.0", "idna"]},  # added
        {"pip_requirements": ["numpy==1.26"]},  # removed
        {"pip_requirements": ["numpy==1.27", "six==1.16.0"]},  # re-pinned
        {"pip_requirements": ["six==1.16.0", "numpy==1.26"]},  # re-ordered
        {"image": "base:2"},  # another base
        {"docker_steps": ["RUN true"]},  # a Docker step
    ],
)
def test_changes_that_count(change: dict[str, object]) -> None:
    base = {"image": "base", "pip_requirements": ["numpy==1.26", "six==1.16.0"]}
    assert env(**base).env_hash() != env(**{**base, **change}).env_hash()


def test_channel_order_counts() -> None:
    a = env(image="b", conda_file={"channels": ["a", "b"], "dependencies": ["python=3.11"]})
    b = env(image="b", conda_file={"channels": ["b", "a"], "dependencies": ["python=3.11"]})
    assert a.env_hash() != b.env_hash()


def test_conda_name_and_variables_do_not_count() -> None:
    a = env(image="b", conda_file={"name": "x", "dependencies": ["python=3.11"]})
    b = env(image="b", conda_file={"name": "y", "variables": {"A": "1"},
                                   "dependencies": ["python=3.11"]})
    assert a.env_hash() == b.env_hash()


def test_requirement_normalization() -> None:
    assert normalize_requirement("Scikit_Learn >= 1.3") == "scikit-learn>=1.3"
    assert normalize_requirement("# comment") is None
    assert normalize_requirement("  ") is None
    assert normalize_requirement('six ;  python_version  >= "3.8"') == 'six; python_version >= "3.8"'
    assert normalize_requirement("--index-url   https://x/simple") == "--index-url https://x/simple"
    assert normalize_requirement("numpy==1.26  # pinned") == "numpy==1.26"


def test_docker_steps_as_text_or_list() -> None:
    text = env(image="b", docker_steps="RUN a \\\n    && b\n# note\n\nENV X=1\n")
    listed = env(image="b", docker_steps=["RUN a && b", "ENV X=1"])
    assert text.docker_steps == ["RUN a && b", "ENV X=1"]
    assert text.env_hash() == listed.env_hash()


def test_default_base_when_only_packages() -> None:
    e = env(pip_requirements=["six"])
    assert e.image == "mlws/base-python:3.11-bookworm"
    assert e.kind == "managed"
    assert env(image="x").kind == "image"


def test_build_context_hash_covers_contents_not_location(ws: object, tmp_path: Path) -> None:
    from jupyter_mlws import Workspace

    assert isinstance(ws, Workspace)
    for name in ("ctx1", "ctx2"):
        ctx = tmp_path / name
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM base\nCOPY app.py /app.py\n")
        (ctx / "app.py").write_text("print(1)\n")
        (ctx / "notes.log").write_text(f"ignored {name}\n")
        (ctx / ".dockerignore").write_text("*.log\n")
    a = ws.environments.create("ctx-a", build={"path": str(tmp_path / "ctx1")})
    b = ws.environments.create("ctx-b", build={"path": str(tmp_path / "ctx2")})
    assert a.env_hash == b.env_hash  # same files, other folder, ignored file differs
    (tmp_path / "ctx2" / "app.py").write_text("print(2)\n")
    c = ws.environments.create("ctx-b", build={"path": str(tmp_path / "ctx2")})
    assert c.env_hash != a.env_hash and c.version == "2"
    files = [f for f, _ in a.definition().build.files]  # type: ignore[union-attr]
    assert files == [".dockerignore", "Dockerfile", "app.py"]
