"""The one NAME=VALUE literal parser (jupyter_mlws.jobs.requests) and the request models."""

from __future__ import annotations

import pytest

from jupyter_mlws.errors import ValidationError
from jupyter_mlws.jobs.requests import (
    CommandJobRequest,
    NotebookJobRequest,
    parse_assignments,
    parse_literal,
    parse_pairs,
)

from .literal_cases import CASES, REFUSED, as_json, expected


def test_each_case_parses_to_its_json_type() -> None:
    parsed = {name: parse_literal(text) for name, (text, _value) in CASES.items()}
    assert as_json(parsed) == expected()
    assert isinstance(parse_literal("-0.5"), float) and isinstance(parse_literal("10"), int)
    assert parse_literal("(1, 2)") == (1, 2)  # a tuple; JSON carries it as a list


@pytest.mark.parametrize("text", list(REFUSED))
def test_literals_json_cannot_carry_are_typed_errors(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_literal(text, name="p")
    message = str(info.value)
    assert all(word in message for word in REFUSED[text]), message
    assert "'p'" in message and "\n" not in message
    with pytest.raises(ValidationError):
        parse_literal(f"[{text}]")  # nested too


def test_assignments_and_pairs() -> None:
    assert parse_assignments(["lr=-0.5", "d=azureml:iris:1", "e=a=b", "n=1"], "-i") == {
        "lr": -0.5, "d": "azureml:iris:1", "e": "a=b", "n": 1}
    assert parse_pairs([("lr", "0.1"), ("opt", "adam")]) == {"lr": 0.1, "opt": "adam"}
    assert parse_pairs({"x": "[1]"}) == {"x": [1]}
    for bad in ("novalue", "=1"):
        with pytest.raises(ValidationError, match="NAME=VALUE"):
            parse_assignments([bad], "--input")
    assert parse_literal("x" * 10_000) == "x" * 10_000
    assert parse_literal("[" * 5000) == "[" * 5000  # too deep: stays text, no RecursionError


def test_request_models_refuse_what_does_not_fit() -> None:
    req = NotebookJobRequest.create(notebook="nb.ipynb", parameters={"a": 1}, timeout=5)
    assert req.kind == "notebook" and req.common()["inputs"] is None
    assert CommandJobRequest.create(command="echo hi").kind == "command"
    for fields in ({"notebook": ""}, {"notebook": "nb.ipynb", "timeout": -1},
                   {"notebook": "nb.ipynb", "bogus": 1}):
        with pytest.raises(ValidationError, match="NotebookJobRequest"):
            NotebookJobRequest.create(**fields)
    with pytest.raises(ValidationError, match="the input 'x' is a list.*notebook parameter"):
        CommandJobRequest.create(command="echo", inputs=parse_assignments(["x=[1, 2]"], "-i"))
