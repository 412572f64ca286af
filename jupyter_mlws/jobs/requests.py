"""What a surface asks for: one request model per job kind and the one ``NAME=VALUE`` parser.

The CLI, the magics and the REST server all read a value typed by a user (``-p lr -0.5``,
``-i lr=-0.5``, ``"literal_parameters": {"lr": "-0.5"}``) with :func:`parse_literal`, so the same
text has the same type everywhere, and all of them submit through :func:`submit_request`.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from jupyter_mlws.errors import ValidationError

if TYPE_CHECKING:
    from jupyter_mlws.jobs.model import Job

#: Literal types JSON (and so a notebook parameter or a job input) cannot carry, and what to
#: write instead.
_NOT_JSON: dict[type, tuple[str, str]] = {
    set: ("a set", "write a list instead, e.g. [1, 2]"),
    frozenset: ("a frozenset", "write a list instead, e.g. [1, 2]"),
    bytes: ("bytes", "write a string instead, e.g. 'x' rather than b'x'"),
    complex: ("a complex number", "write a list of its parts, e.g. [1, 2], or a quoted "
              "string, e.g. '1+2j'"),
    type(Ellipsis): ("Ellipsis", "write None or a quoted string instead"),
}


def parse_literal(text: str, *, name: str | None = None) -> Any:
    """A value as typed by a user: a Python literal when it is one, else the text itself.

    ``0.1`` is a float, ``-3`` an int, ``[64, 32]`` a list, ``(1, 2)`` a tuple, ``True`` a bool,
    ``None`` None, ``'7'`` the string ``"7"``; ``adam`` or ``data/x.csv`` stay strings. A literal
    JSON cannot carry (``{1, 2}``, ``b'x'``, ``1+2j``, a dict with non-string keys) raises
    :class:`ValidationError` saying how to write it instead.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    _check_json(value, text, name)
    return value


def _check_json(value: Any, text: str, name: str | None) -> None:
    what = f"The value {text!r}" + (f" of {name!r}" if name else "")
    for typ, (label, fix) in _NOT_JSON.items():
        if isinstance(value, typ):
            raise ValidationError(f"{what} is {label}, which a job parameter cannot carry "
                                  "(values travel as JSON).", hint=f"To pass it, {fix}.")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, text, name)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{what} is a dict with the non-string key {key!r}, which JSON would turn "
                    "into a string.", hint=f"Quote the keys, e.g. {{'{key}': ...}}.")
            _check_json(item, text, name)


def split_assignment(item: str, option: str) -> tuple[str, str]:
    """``NAME=VALUE`` -> (name, value text); ``option`` names where it came from, for errors."""
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise ValidationError(f"{option} {item!r} must look like NAME=VALUE.",
                              hint=f"For example: {option} lr=0.1")
    return name.strip(), value


def parse_assignments(items: Iterable[str] | None, option: str) -> dict[str, Any]:
    """``NAME=VALUE`` items -> ``{name: parse_literal(value)}`` (the last of a name wins)."""
    out: dict[str, Any] = {}
    for item in items or ():
        name, text = split_assignment(item, option)
        out[name] = parse_literal(text, name=name)
    return out


def parse_pairs(pairs: Iterable[tuple[str, str]] | Mapping[str, str] | None) -> dict[str, Any]:
    """``(NAME, VALUE)`` pairs (``-p NAME VALUE``) or a name -> text mapping, values parsed."""
    items = pairs.items() if isinstance(pairs, Mapping) else (pairs or ())
    return {str(name): parse_literal(str(text), name=str(name)) for name, text in items}


# --- requests ---------------------------------------------------------------------------------


def _path_text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


PathText = Annotated[str, BeforeValidator(_path_text)]


class JobRequest(BaseModel):
    """What every job kind can ask for (the keyword arguments of ``ws.jobs.submit_*``)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    environment: Any = None
    compute: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    code: PathText | None = None
    display_name: str | None = None
    experiment: str | None = None
    timeout: float | None = Field(None, gt=0)
    environment_variables: dict[str, str] = Field(default_factory=dict)

    @field_validator("inputs")
    @classmethod
    def _input_values(cls, inputs: dict[str, Any]) -> dict[str, Any]:
        for name, value in inputs.items():
            if isinstance(value, (list, tuple, set, bytes)):
                raise ValueError(
                    f"the input {name!r} is a {type(value).__name__}; an input is a number, a "
                    "bool, a string (a data/model reference, a path or a URI) or an input spec "
                    "mapping; give a list as a notebook parameter instead")
        return inputs

    @classmethod
    def create(cls, **fields: Any) -> Any:
        """Build the request; a field that does not fit is a :class:`ValidationError`."""
        try:
            return cls.model_validate(fields)
        except PydanticValidationError as exc:
            parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e['msg']}"
                     for e in exc.errors()]
            raise ValidationError(f"Invalid {cls.__name__}: " + "; ".join(parts)) from None

    def common(self) -> dict[str, Any]:
        """The keyword arguments both submit methods take."""
        return {"environment": self.environment, "compute": self.compute,
                "inputs": self.inputs or None, "outputs": self.outputs or None,
                "code": self.code, "display_name": self.display_name,
                "experiment": self.experiment, "timeout": self.timeout,
                "environment_variables": self.environment_variables or None}


class NotebookJobRequest(JobRequest):
    """Run ``notebook`` with papermill, injecting ``parameters``."""

    kind: Literal["notebook"] = "notebook"
    notebook: PathText = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class CommandJobRequest(JobRequest):
    """Run the shell ``command`` (``${{inputs.x}}`` and ``${{outputs.y}}`` filled in)."""

    kind: Literal["command"] = "command"
    command: str = Field(min_length=1)


def submit_request(jobs_ops: Any, request: NotebookJobRequest | CommandJobRequest) -> Job:
    """Submit ``request`` through ``jobs_ops`` (a ``JobOperations``); returns the Queued job."""
    if isinstance(request, NotebookJobRequest):
        return jobs_ops.submit_notebook(request.notebook, request.parameters,
                                        **request.common())
    if isinstance(request, CommandJobRequest):
        return jobs_ops.submit_command(request.command, **request.common())
    raise ValidationError(f"{type(request).__name__} is not a job request.",
                          hint="Use NotebookJobRequest or CommandJobRequest.")


__all__ = ["CommandJobRequest", "JobRequest", "NotebookJobRequest", "parse_assignments",
           "parse_literal", "parse_pairs", "split_assignment", "submit_request"]
