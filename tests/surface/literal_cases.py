"""The typed values every surface must agree on: the text a user writes -> the JSON it becomes.

The CLI (``-p``/``-i``), the magics (``%submit -p``/``--input``) and REST
(``literal_parameters``/``literal_inputs``) each check these against what the job recorded, so
the same input has the same type everywhere.
"""

from __future__ import annotations

import json
from typing import Any

#: parameter name -> (text as typed, the JSON the job records). Every name is a parameter of
#: NOTEBOOK_PARAMETERS.
CASES: dict[str, tuple[str, Any]] = {
    "p_float": ("0.5", 0.5),
    "p_negative": ("-0.5", -0.5),
    "p_int": ("-3", -3),
    "p_bool": ("True", True),
    "p_none": ("None", None),
    "p_quoted": ("'7'", "7"),
    "p_word": ("adam", "adam"),
    "p_path": ("data/train.csv", "data/train.csv"),
    "p_call": ("relu(x)", "relu(x)"),
    "p_list": ("[64, 32]", [64, 32]),
    "p_tuple": ("(1, 'a')", [1, "a"]),
    "p_dict": ("{'a': 1, 'b': [True]}", {"a": 1, "b": [True]}),
}

#: text -> the words its error must contain (a type JSON cannot carry, and how to write it).
REFUSED: dict[str, tuple[str, ...]] = {
    "{1, 2}": ("a set", "list"),
    "b'x'": ("bytes", "string"),
    "1+2j": ("a complex number", "list"),
    "{1: 'a'}": ("non-string key",),
}

#: input name -> (text as typed after ``NAME=``, the JSON the job records); the notebook's
#: parameters cell defines them, so they are injected as parameters too.
INPUT_CASES: dict[str, tuple[str, Any]] = {"lr": ("-0.5", -0.5), "opt": ("adam", "adam")}

#: Defaults of None, which the server's check of int/float/bool defaults leaves alone.
NOTEBOOK_PARAMETERS = "\n".join(f"{name} = None" for name in [*CASES, *INPUT_CASES])


def as_json(params: dict[str, Any]) -> dict[str, str]:
    """Each value as JSON text, so 1, 1.0 and True differ."""
    return {k: json.dumps(v, sort_keys=True) for k, v in params.items()}


def expected(*, inputs: bool = False) -> dict[str, str]:
    """The recorded parameters, as JSON text (with the injected inputs when ``inputs``)."""
    cases = {**CASES, **(INPUT_CASES if inputs else {})}
    return as_json({name: value for name, (_text, value) in cases.items()})
