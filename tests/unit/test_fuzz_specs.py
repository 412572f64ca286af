"""Property-based fuzzing of every spec kind (issue 9, defect 10): whatever the YAML or dict, the
real entry points answer with a one-line :class:`MlwsError` or succeed - no traceback, no hang.

Files go through ``Workspace.create_from_file`` on a real workspace (job files are validated as
the jobs layer validates them, not submitted); dicts through each kind's ``create_from_dict`` and
``validate_spec``. The profile is deterministic (``derandomize``) and runs well over 300 cases.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_mlws import Workspace
from jupyter_mlws.assets.job import CommandJobSpec, PipelineJobSpec
from jupyter_mlws.assets.schemas import SCHEMAS, kind_of
from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec
from jupyter_mlws.errors import MlwsError, SpecError
from tests.memcap import address_space_capped

FUZZ = settings(
    max_examples=130,  # three properties: 390 cases a run
    deadline=timedelta(seconds=5),  # generous on a busy 2-core machine; a hang is far longer
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.large_base_example],
)

ODD_TEXT = [
    "", " ", "\x00", "a\x00b", "x" * 5000, "/".join(["y" * 250] * 20), "ünïcødé ✓", "💥🔥",
    "../../etc/passwd", "/etc/shadow", "s3://AKIA:pw@bucket/p", "https://u:p@host/x",
    "${{inputs.a}}", "$[[--x ${{inputs.b}}]]", "latest", "MLWS-x", "azureml:e:1", "mlws:e@latest",
    "mlws://jobs/j/outputs/o", "azureml://datastores/local/paths/a", "-rf", "a;b", "'\"",
    "python:3.11", "Python:BAD", "1g", "inf", "null", "~", "yes", "2024-13-45", "\t\r\n",
    "\u202e", "\ufeff", "%", "&a", "*a", "!!binary", "a: b", "- x",
]


def _names_no_big_folder(text: str) -> bool:
    """Random text used as a path must not name "/", "~", "." or ".." (a model registered from
    there would copy a whole file system: slow, not wrong)."""
    stripped = text.strip()
    return not stripped.startswith(("/", "~")) and not all(
        part in ("", ".", "..") for part in stripped.split("/"))


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ODD_TEXT),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
            _names_no_big_folder),
    )


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(), _text(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
    )


def _values(extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    leaves = _scalars() if extra is None else st.one_of(_scalars(), extra)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(_text(), inner, max_size=4)),
        max_leaves=12,
    )


#: Valid documents of each kind (stem of their $schema, fields); fuzzing replaces, drops and
#: adds fields at any depth.
TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    ("environment", {"name": "e", "image": "python:3.11", "pip_requirements": ["numpy==1.26"],
                     "conda_file": {"dependencies": ["python=3.11", {"pip": ["pandas"]}]},
                     "docker_steps": ["RUN echo hi"], "environment_variables": {"A": "1"},
                     "description": "d", "tags": {"a": "b"}, "version": 1}),
    ("environment", {"name": "e2", "build": {"path": "ctx", "dockerfile_path": "Dockerfile"}}),
    ("model", {"name": "m", "path": "x", "type": "custom_model", "properties": {"p": "q"},
               "flavors": {"f": {}}, "tags": {"a": "b"}}),
    ("data", {"name": "d", "path": "d", "type": "uri_folder", "properties": {}}),
    ("data", {"name": "d2", "path": "azureml://datastores/local/paths/a", "type": "uri_file"}),
    ("commandComponent", {"name": "c", "command": "echo ${{inputs.a}} ${{outputs.o}}",
                          "inputs": {"a": {"type": "string", "default": "x"}},
                          "outputs": {"o": {"type": "uri_folder"}},
                          "environment": {"image": "python:3.11"}, "code": "d"}),
    ("datastore", {"name": "ds", "type": "fsspec", "url": "s3://bucket/p",
                   "credentials": {"key": "k", "secret": "s"},
                   "storage_options": {"anon": False}}),
    ("datastore", {"name": "dl", "type": "local", "path": "d"}),
    ("azureBlob", {"name": "az", "type": "azure_blob", "account_name": "acct",
                   "container_name": "c", "credentials": {"account_key": "k"}}),
    ("compute", {"name": "cpu", "type": "docker", "max_concurrent_jobs": 2, "cpus": 1.5,
                 "memory": "1g", "gpus": 0, "settings": {}}),
    ("commandJob", {"command": "echo ${{inputs.a}}", "type": "command",
                    "inputs": {"a": 1, "b": {"type": "uri_file", "path": "x"}},
                    "outputs": {"o": {"type": "uri_folder"}},
                    "environment": {"image": "python:3.11"}, "compute": "local", "code": "d",
                    "environment_variables": {"A": "1"}, "timeout": 10}),
    ("pipelineJob", {"type": "pipeline", "jobs": {"s": {"type": "command", "command": "echo",
                     "inputs": {"a": 1}}}, "inputs": {"a": 1}, "settings": {},
                     "compute": "local"}),
]
_STEMS = {"azureBlob": "datastore"}


@st.composite
def _document(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> tuple[str, dict[str, Any]]:
    """A template with a few values replaced or dropped (at any depth) and a few keys added."""
    stem, template = draw(st.sampled_from(TEMPLATES))
    doc: dict[str, Any] = {"$schema": f"mlws://schemas/{stem}.schema.json",
                           **copy.deepcopy(template)}
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        parent: Any = doc
        while True:
            keys = list(parent) if isinstance(parent, dict) else list(range(len(parent)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = parent[key]
            if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                parent = child
                continue
            action = draw(st.sampled_from(["replace", "replace", "drop"]))
            if action == "drop" and isinstance(parent, dict):
                del parent[key]
            else:
                parent[key] = draw(values)
            break
    if draw(st.integers(0, 4)) == 0:
        doc.update(draw(st.dictionaries(_text(), values, min_size=1, max_size=2)))
    return stem, doc


def _bomb(levels: int) -> str:
    lines = ["b0: &b0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"b{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "bomb:\n  " + "\n  ".join(lines)


#: Ways a YAML text goes wrong beyond its values.
MUTATIONS: list[Callable[[str, int], str]] = [
    lambda t, n: t,
    lambda t, n: t + "\nname: again\n",  # a duplicate key (when the document has a name)
    lambda t, n: t + "\ncommand: again\n",
    lambda t, n: t + "\ndeep: " + "[" * (n * 3) + "]" * (n * 3) + "\n",
    lambda t, n: t + "\ndeep:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, n)) + "\n",
    lambda t, n: t + "\n" + _bomb(1 + n % 10) + "\n",
    lambda t, n: t + "\nself: &r [*r]\n",
    lambda t, n: t + "\nself: &r {a: *r}\n",
    lambda t, n: "base: &b {x: 1}\n" + t + "\nmerged: {<<: *b, y: 2}\n",
    lambda t, n: t + "\nundefined: *nope\n",
    lambda t, n: t + "\ntag: !!python/object/apply:os.system [echo]\n",
    lambda t, n: t + "\ntag: !!binary AAAA\n",
    lambda t, n: t + "\ntag: !!timestamp 2020-13-45\n",
    lambda t, n: t + "\nbig: 1" + "0" * (n * 60) + "\n",
    lambda t, n: t[: n % (len(t) + 1)],  # cut anywhere
    lambda t, n: t[: n % (len(t) + 1)] + "\t: [\n" + t[n % (len(t) + 1):],
    lambda t, n: "%YAML 1.1\n---\n" + t,
    lambda t, n: t + "\n---\nsecond: document\n",
    lambda t, n: "- " + t.replace("\n", "\n  "),
]


@pytest.fixture
def fuzz_ws(tmp_path: Path) -> Iterator[tuple[Workspace, Path]]:
    """One real workspace for every case of a property, beside the files the templates name."""
    root = tmp_path
    (root / "x").write_text("model bytes")
    (root / "d").mkdir()
    (root / "d" / "f.txt").write_text("data")
    (root / "ctx").mkdir()
    (root / "ctx" / "Dockerfile").write_text("FROM python:3.11\n")
    ws = Workspace.init(root / "project")
    yield ws, root
    ws.close()


CASES: dict[str, int] = {}


def _check(call: Callable[[], Any], name: str) -> None:
    """Run one case: it succeeds or raises a one-line MlwsError; anything else fails the test."""
    CASES[name] = CASES.get(name, 0) + 1
    try:
        with address_space_capped():
            call()
    except MlwsError as exc:
        text = str(exc)
        assert "\n" not in text, f"a multi-line error: {text!r}"
        assert "Traceback" not in text


def _validate_job(data: dict[str, Any], source: str | None = None, index: Any = None) -> None:
    """What ``ws.jobs.create_from_file`` checks before it submits (no job is started)."""
    kind = data.get("type", "command")
    if kind == "pipeline":
        validate_spec(PipelineJobSpec, data, source=source, index=index)
    elif kind == "command":
        cleaned = {k: v for k, v in data.items() if k not in CommandJobSpec.ignored_fields}
        validate_spec(CommandJobSpec, cleaned, source=source, index=index)
    else:
        raise SpecError(f"unknown job type {str(kind)[:40]!r}", file=source)


def _create_from_file(ws: Workspace, path: Path) -> None:
    data, index = load_yaml(path)
    if isinstance(data, dict) and kind_of(data, source=str(path), index=index) in (
        "command_job", "pipeline_job"
    ):
        _validate_job(data, str(path), index)
        return
    ws.create_from_file(path)


def test_fuzz_yaml_files_of_every_kind(fuzz_ws: tuple[Workspace, Path]) -> None:
    ws, root = fuzz_ws
    spec = root / "spec.yaml"

    @FUZZ
    @given(document=_document(_values()),
           mutation=st.sampled_from([MUTATIONS[0]] * len(MUTATIONS) + MUTATIONS),
           n=st.integers(0, 120))
    def case(document: tuple[str, dict[str, Any]], mutation: Callable[[str, int], str],
             n: int) -> None:
        _, doc = document
        text = mutation(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), n)
        spec.write_text(text, encoding="utf-8")
        _check(lambda: _create_from_file(ws, spec), "files")

    case()
    assert CASES["files"] >= FUZZ.max_examples


def test_fuzz_raw_bytes_and_text(fuzz_ws: tuple[Workspace, Path]) -> None:
    ws, root = fuzz_ws
    spec = root / "raw.yaml"

    @FUZZ
    @given(raw=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([k for k in SCHEMAS]).flatmap(
            lambda stem: st.text(max_size=200).map(
                lambda t: f"$schema: mlws://schemas/{stem}.schema.json\n{t}".encode(
                    "utf-8", "surrogatepass"))),
    ))
    def case(raw: bytes) -> None:
        spec.write_bytes(raw)
        _check(lambda: _create_from_file(ws, spec), "raw")

    case()
    assert CASES["raw"] >= FUZZ.max_examples


def test_fuzz_dicts_of_every_kind(fuzz_ws: tuple[Workspace, Path]) -> None:
    ws, root = fuzz_ws
    python_only = st.one_of(
        st.binary(max_size=5), st.sets(st.integers(0, 3), max_size=2),
        st.tuples(_scalars()), st.just(object()), st.just(math.nan), st.just(Path("x")),
        st.complex_numbers(max_magnitude=10), st.integers(min_value=2**63, max_value=2**200),
    )

    @FUZZ
    @given(document=_document(_values(python_only)), self_ref=st.integers(0, 9))
    def case(document: tuple[str, dict[str, Any]], self_ref: int) -> None:
        stem, doc = document
        if self_ref == 0:
            doc["loop"] = doc  # a cycle no YAML file can express, but a Python caller can
        kind, model = SCHEMAS[_STEMS.get(stem, stem)]
        if kind in ("command_job", "pipeline_job"):
            _check(lambda: _validate_job(doc), "dicts")
            return
        _check(lambda: validate_spec(model, doc), "dicts")
        _check(lambda: ws.operations(kind).create_from_dict(doc, base_dir=root), "dict-create")

    case()
    assert CASES["dicts"] >= FUZZ.max_examples


def test_every_template_is_valid(fuzz_ws: tuple[Workspace, Path]) -> None:
    """The fuzz starts from valid documents, so its cases reach past the first check."""
    ws, root = fuzz_ws
    for i, (stem, template) in enumerate(TEMPLATES):
        spec = root / f"t{i}.yaml"
        doc = {"$schema": f"mlws://schemas/{stem}.schema.json", **template}
        spec.write_text(yaml.safe_dump(doc, sort_keys=False))
        _create_from_file(ws, spec)
    assert {kind for kind, _ in SCHEMAS.values()} == {
        SCHEMAS[_STEMS.get(stem, stem)][0] for stem, _ in TEMPLATES}
