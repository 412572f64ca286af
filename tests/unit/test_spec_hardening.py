"""Hostile or broken specs give one-line typed errors, never a traceback, a hang or a memory blow-up
(issue 9, defect 10)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.assets import environment
from jupyter_mlws.assets.yaml_io import parse_yaml
from jupyter_mlws.errors import MlwsError, SpecError
from tests.memcap import address_space_capped

MODEL = "$schema: mlws://schemas/model.schema.json\n"
MAX_SPEC_BYTES = 1024 * 1024  # the documented limit of a YAML spec


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _one_line_error(ws: Workspace, path: Path | str) -> MlwsError:
    with pytest.raises(MlwsError) as err:
        ws.create_from_file(path)
    assert "\n" not in str(err.value), str(err.value)
    return err.value


def test_deeply_nested_yaml_is_a_one_line_error(ws: Workspace, tmp_path: Path) -> None:
    for body in ("[" * 5000 + "]" * 5000,
                 "\n" + "".join(" " * i + f"k{i}:\n" for i in range(2000)) + " " * 2000 + "x"):
        err = _one_line_error(ws, _write(tmp_path, MODEL + "name: m\nflavors: " + body))
        assert isinstance(err, SpecError) and "deep" in str(err)


def test_a_5000_character_path_is_a_one_line_error(ws: Workspace, tmp_path: Path) -> None:
    long = "x" * 5000
    err = _one_line_error(ws, tmp_path / long)
    assert isinstance(err, SpecError) and "too long" in str(err).lower()
    assert long not in str(err)
    err = _one_line_error(ws, _write(tmp_path, MODEL + f"name: m\npath: {long}\n"))
    assert "longer than" in str(err) and "spec.yaml:3" in str(err)
    parts = "/".join(["y" * 200] * 25)  # every part fits, the whole does not
    err = _one_line_error(ws, _write(tmp_path, MODEL + f"name: m\npath: {parts}\n"))
    assert "longer than 4096" in str(err)
    for create in (lambda: ws.models.create("m", path=long),
                   lambda: ws.data.create("d", path=long),
                   lambda: ws.datastores.create("ds", path=long)):
        with pytest.raises(SpecError, match="longer than"):
            create()
    env = _write(tmp_path, "$schema: mlws://schemas/environment.schema.json\nname: e\n"
                 f"conda_file: {long}\n")
    assert "too long" in str(_one_line_error(ws, env)).lower()


@pytest.mark.parametrize("spec", [
    "$schema: mlws://schemas/datastore.schema.json\nname: ds\ntype: {a: 1}\npath: /tmp\n",
    "$schema: mlws://schemas/datastore.schema.json\nname: ds\ntype: [azure_blob]\n",
    "$schema: mlws://schemas/datastore.schema.json\nname: ds\ntype: azure_blob\n"
    "account_name: {a: 1}\ncontainer_name: c\n",
    MODEL + "name: {a: 1}\npath: x\n",
    MODEL + "name: m\npath: {a: 1}\n",
    "$schema: {a: 1}\nname: m\n",
    "$schema: mlws://schemas/environment.schema.json\nname: e\nimage: {a: 1}\n",
    "$schema: mlws://schemas/environment.schema.json\nname: e\nconda_file:\n"
    "  dependencies: [{pip: x, 1: y}]\n",
    "$schema: mlws://schemas/environment.schema.json\nname: e\nimage: python\n"
    "environment_variables: {A: {b: 1}}\n",
])
def test_a_mapping_where_text_belongs_is_a_one_line_error(
    ws: Workspace, tmp_path: Path, spec: str
) -> None:
    assert isinstance(_one_line_error(ws, _write(tmp_path, spec)), SpecError)


def test_an_alias_bomb_is_refused_before_it_expands(ws: Workspace, tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb = _write(tmp_path, MODEL + "name: m\npath: x\nflavors:\n  " + "\n  ".join(lines))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with address_space_capped():  # unbounded, it would take the machine's memory
        err = _one_line_error(ws, bomb)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert "expands to more than" in str(err) and "spec.yaml:" in str(err)
    assert grown_kib < 200 * 1024  # the expanded document would be gigabytes
    # an alias naming the node that holds it is refused too (it would expand forever)
    err = _one_line_error(ws, _write(tmp_path, MODEL + "name: m\npath: x\nflavors: &f {a: *f}\n"))
    assert "contains it" in str(err)
    # modest, ordinary use of anchors still works
    data, _ = parse_yaml("base: &b {x: 1}\nother: {<<: *b, y: 2}\nlist: [*b, *b]\n")
    assert data["other"] == {"x": 1, "y": 2} and data["list"] == [{"x": 1}, {"x": 1}]


def test_duplicate_keys_are_an_error_with_the_line(ws: Workspace, tmp_path: Path) -> None:
    err = _one_line_error(ws, _write(tmp_path, MODEL + "name: m\npath: x\nname: n\n"))
    assert "spec.yaml:4" in str(err) and "'name' appears twice" in str(err)
    assert "line 2" in str(err)
    nested = MODEL + "name: m\npath: x\ntags:\n  a: 1\n  b: 2\n  a: 3\n"
    assert "spec.yaml:7" in str(_one_line_error(ws, _write(tmp_path, nested)))
    # a key given in a merge and again explicitly is an override, not a duplicate
    parse_yaml("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")


@pytest.mark.parametrize("tags, message", [
    ("[a, b]", "mapping"),
    ("{a: [1, 2]}", "must be text, not a list"),
    ("{a: {b: c}}", "must be text, not a mapping"),
    ('{a: "x\\0y"}', "NUL"),
    ('{"x\\0y": a}', "NUL"),
    ("{1: a}", "tag names must be text"),
])
def test_tags_must_be_text(ws: Workspace, tmp_path: Path, tags: str, message: str) -> None:
    (tmp_path / "x").write_text("w")
    err = _one_line_error(ws, _write(tmp_path, MODEL + f"name: m\npath: x\ntags: {tags}\n"))
    assert message in str(err)
    with pytest.raises(SpecError):
        ws.models.create("m", path=tmp_path / "x", tags={"a": ["b"]})  # type: ignore[dict-item]


def test_tags_that_are_numbers_or_booleans_are_kept_as_text(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("w")
    spec = _write(tmp_path, MODEL + "name: m\npath: x\ntags: {epochs: 10, ok: true, "
                  "date: 2024-01-02, note: }\nversion: 2024-01-02\n")
    model = ws.create_from_file(spec)
    assert model.tags == {"epochs": "10", "ok": "True", "date": "2024-01-02", "note": ""}
    assert model.version == "2024-01-02"


def test_sizes_are_bounded(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("w")
    too_many = "{" + ", ".join(f"t{i}: v" for i in range(101)) + "}"
    for extra, message in (
        (f"tags: {too_many}", "at most 100 tags"),
        (f"tags: {{k: {'v' * 5000}}}", "at most 4096 characters"),
        (f"tags: {{{'k' * 300}: v}}", "1 to 256 characters"),
        (f"description: {'d' * 10_001}", "at most 10000 characters"),
        (f"name: {'n' * 300}", "longer than 255"),
    ):
        body = MODEL + "path: x\n" + ("" if extra.startswith("name") else "name: m\n") + extra
        assert message in str(_one_line_error(ws, _write(tmp_path, body + "\n")))
    big = _write(tmp_path, MODEL + "name: m\npath: x\ndescription: |\n" +
                 ("  " + "z" * 1000 + "\n") * (MAX_SPEC_BYTES // 1000 + 1))
    assert "larger than 1024 KiB" in str(_one_line_error(ws, big))
    assert "more than" in str(_one_line_error(ws, _write(
        tmp_path, MODEL + "name: m\npath: x\nflavors: [" + "0, " * 100_001 + "0]\n")))


def test_strings_with_nul_and_odd_yaml_types_are_refused(ws: Workspace, tmp_path: Path) -> None:
    for body, message in (
        ('name: m\npath: "x\\0y"\n', "NUL"),
        ("name: m\npath: x\nflavors: {a: !!binary AAAA}\n", "could not determine a constructor"),
        ("name: m\npath: x\nflavors: {a: !!set {b}}\n", "could not determine a constructor"),
        ("name: m\npath: x\nflavors: {a: 0x" + "f" * 40 + "}\n", "too large"),
        ("name: m\npath: x\nflavors: {a: 1" + "0" * 5000 + "}\n", "too long"),
    ):
        assert message in str(_one_line_error(ws, _write(tmp_path, MODEL + body)))
    with pytest.raises(SpecError, match="NUL"):
        ws.models.create("m", path="x", description="a\x00b")


@pytest.mark.parametrize("ref", [
    "python:3.11-slim", "mlws/base-python:3.11-bookworm", "localhost:5000/team/img:v1.2",
    "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest", "[::1]:5000/img",
    "img@sha256:" + "a" * 64, "registry.example.org/a/b__c/d-e:tag@sha256:" + "0" * 64,
])
def test_valid_image_references_are_accepted(ref: str) -> None:
    assert environment.validate_image_ref(ref) == ref


@pytest.mark.parametrize("ref", [
    "Python:3.11", "python:", "python:3.11 slim", "-python", "python;rm -rf /", "a//b",
    "python:" + "t" * 129, "img@sha256:abc", "x" * 600, "img:tag\n", "--privileged",
])
def test_invalid_image_references_are_refused(ws: Workspace, tmp_path: Path, ref: str) -> None:
    with pytest.raises(ValueError):
        environment.validate_image_ref(ref)
    with pytest.raises(SpecError, match="not a Docker image reference"):
        ws.environments.create("e", image=ref)


def test_updating_tags_refuses_what_creating_refuses(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("w")
    ws.models.create("m", path=tmp_path / "x")
    with pytest.raises(MlwsError, match="must be text, not a list"):
        ws.models.update("m", 1, tags={"a": ["b"]})  # type: ignore[dict-item]
    assert ws.models.update("m", 1, tags={"n": 3}).tags == {"n": "3"}  # type: ignore[dict-item]


def test_environment_text_is_read_with_the_same_bounds(ws: Workspace) -> None:
    """``%%environment`` and ``create_from_text`` parse conda YAML with the bounded loader."""
    bomb = "dependencies: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &a{i} [" + ", ".join(["*a" if i == 0 else f"*a{i - 1}"] * 9) + "]\n"
        for i in range(9))
    with address_space_capped(), pytest.raises(SpecError, match="expands to more than"):
        ws.environments.create_from_text("e", bomb, fmt="conda")
    with pytest.raises(SpecError, match="appears twice"):
        ws.environments.create_from_text("e", "dependencies: [a]\ndependencies: [b]\n")
