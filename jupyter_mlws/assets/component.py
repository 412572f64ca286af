"""Command components: typed inputs and outputs, code, an environment and a command template.

Command templates follow the Azure ML CLI v2: ``${{inputs.x}}`` and ``${{outputs.y}}`` are
replaced by values and paths; a ``$[[ ... ]]`` segment is kept only when every input it names
was given a value, which is how optional inputs are written.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from jupyter_mlws.assets.base import Asset, AssetSpec, SpecModel, validate_path_text
from jupyter_mlws.assets.data import DATA_TYPES, PRIMITIVE_TYPES
from jupyter_mlws.assets.environment import EnvironmentSpec, inline_environment
from jupyter_mlws.assets.model import MODEL_TYPES
from jupyter_mlws.errors import ValidationError

INPUT_TYPES: tuple[str, ...] = PRIMITIVE_TYPES + DATA_TYPES + MODEL_TYPES
OUTPUT_TYPES: tuple[str, ...] = DATA_TYPES + MODEL_TYPES

_PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)


class InputSpec(SpecModel):
    ignored_fields: ClassVar[frozenset[str]] = frozenset({"mode"})

    type: str
    default: Any = None
    optional: bool = False
    description: str | None = None
    min: float | None = None
    max: float | None = None
    enum: list[Any] | None = None
    mode: str | None = Field(default=None, exclude=True)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in INPUT_TYPES:
            raise ValueError(f"unknown input type {value!r}; use one of {', '.join(INPUT_TYPES)}")
        return value


class OutputSpec(SpecModel):
    type: str = "uri_folder"
    description: str | None = None
    mode: str | None = Field(default=None, exclude=True)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in OUTPUT_TYPES:
            raise ValueError(f"unknown output type {value!r}; use one of {', '.join(OUTPUT_TYPES)}")
        return value


def _input_type_default(value: Any) -> Any:
    if isinstance(value, str):
        return {"type": value}
    return value


def check_command(
    command: str, inputs: Mapping[str, InputSpec], outputs: Mapping[str, OutputSpec]
) -> None:
    """Refuse references to undeclared names and optional inputs outside ``$[[ ]]``."""
    outside = _OPTIONAL.sub("", command)
    for m in _PLACEHOLDER.finditer(command):
        group, name = m.group(1), m.group(2)
        declared: Mapping[str, Any] = inputs if group == "inputs" else outputs
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ValueError(f"the command uses {group}.{name}, which is not declared "
                             f"(declared {group}: {known})")
    for m in _PLACEHOLDER.finditer(outside):
        if m.group(1) == "inputs" and inputs[m.group(2)].optional:
            raise ValueError(
                f"the optional input '{m.group(2)}' must be inside $[[ ... ]] in the command, "
                "so that it can be left out"
            )


def resolve_command(
    command: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any] | None = None
) -> str:
    """Fill a command template. Inputs whose value is ``None`` count as not given.

    Every value is inserted as literal text for ``/bin/sh``: outside quotes it is exactly one
    shell word; inside a quoted string of the template it becomes literal text of that string.
    No value can run a command, expand a variable or split into several words.
    """
    outputs = outputs or {}

    def value_of(group: str, name: str) -> Any:
        source = inputs if group == "inputs" else outputs
        return source.get(name)

    def keep_optional(m: re.Match[str]) -> str:
        body = m.group(1)
        refs = _PLACEHOLDER.findall(body)
        if all(value_of(g, n) is not None for g, n in refs):
            return body
        return ""

    text = _OPTIONAL.sub(keep_optional, command)
    out: list[str] = []
    scanner = _ShellQuoting()
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        scanner.feed(text[pos:m.start()])
        out.append(text[pos:m.start()])
        value = value_of(m.group(1), m.group(2))
        if value is None:
            raise ValidationError(
                f"The command needs {m.group(1)}.{m.group(2)}, which has no value.",
                hint="Give it a value, or a default in the component.",
            )
        out.append(scanner.literal(_render(value), f"{m.group(1)}.{m.group(2)}"))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out).strip()


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


class _ShellQuoting:
    """Follows the quoting state of POSIX shell text, to insert a value as a literal there.

    Where no quoting makes a value literal - inside ``${...}`` (a new quoting level in double
    quotes), ``$((...))`` (evaluated) or a here-document's body (expanded, and ended by a line
    the value could hold) - :meth:`literal` refuses it.
    """

    _CODE = frozenset({"out", "sub", "paren", "backtick"})
    #: Contexts where a value cannot be made literal, and what to say about them.
    _UNQUOTABLE = {"brace": "inside ${...}", "arith": "inside $((...))",
                   "heredoc": "inside a here-document"}

    def __init__(self) -> None:
        self._stack = ["out"]
        self._heredocs: list[tuple[str, bool]] = []  # (delimiter, strip tabs) pending
        self._line = ""  # the here-document line read so far

    def feed(self, text: str) -> None:
        i = 0
        stack = self._stack
        while i < len(text):
            c, top = text[i], stack[-1]
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if top == "heredoc":
                self._heredoc_char(c)
            elif top == "sq":
                if c == "'":
                    stack.pop()
            elif c == "\\":
                i += 1  # the next character is escaped
            elif c == "$" and text.startswith("((", i + 1):
                stack.append("arith")
                i += 2
            elif c == "$" and nxt == "(":
                stack.append("sub")
                i += 1
            elif c == "$" and nxt == "{":
                stack.append("brace")
                i += 1
            elif c == "}" and top == "brace":
                stack.pop()
            elif c == "`":
                if top == "backtick":
                    stack.pop()
                else:
                    stack.append("backtick")
            elif top == "dq":
                if c == '"':
                    stack.pop()
            elif c == "'":
                stack.append("sq")
            elif c == '"':
                stack.append("dq")
            elif c == "(":
                stack.append("paren")
            elif c == ")" and top in ("sub", "paren", "arith"):
                if top == "arith" and nxt == ")":
                    i += 1
                stack.pop()
            elif c == "<" and text.startswith("<<", i) and not text.startswith("<<<", i) \
                    and top in self._CODE:
                i = self._heredoc_start(text, i + 2) - 1
            elif c == "\n" and self._heredocs and top in self._CODE:
                stack.append("heredoc")
                self._line = ""
            i += 1

    def _heredoc_start(self, text: str, i: int) -> int:
        """Note the here-document whose ``<<`` ends before ``i``; returns where its word ends."""
        strip = text.startswith("-", i)
        i += 1 if strip else 0
        while i < len(text) and text[i] in " \t":
            i += 1
        start = i
        while i < len(text) and text[i] not in " \t\n;|&<>()":
            i += 1
        word = re.sub(r"[\\'\"]", "", text[start:i])
        self._heredocs.append((word, strip))
        return i

    def _heredoc_char(self, c: str) -> None:
        if c != "\n":
            self._line += c
            return
        delimiter, strip = self._heredocs[0]
        if (self._line.lstrip("\t") if strip else self._line) == delimiter:
            self._heredocs.pop(0)
            if not self._heredocs:
                self._stack.pop()
        self._line = ""

    def literal(self, value: str, ref: str = "the value") -> str:
        """``value`` as literal text at the current position."""
        unsafe = [self._UNQUOTABLE[s] for s in self._stack if s in self._UNQUOTABLE]
        if unsafe:
            raise ValidationError(
                f"The command uses {ref} {unsafe[-1]}, where the shell would run what the "
                "value holds: no quoting makes it literal text there.",
                hint="Pass it to the shell as an environment variable instead (e.g. "
                "$MLWS_INPUT_<NAME>), or move it out of that construct.")
        quoted = shlex.quote(value)
        top = self._stack[-1]
        if top == "sq":  # close the template's quote, add the value, reopen it
            quoted = f"'{quoted}'"
        elif top == "dq":
            quoted = f'"{quoted}"'
        for _ in range(self._stack.count("backtick")):  # the shell unescapes `...` once more
            quoted = (quoted.replace("\\", "\\\\").replace("`", "\\`")
                      .replace("$", "\\$"))
        return quoted


class ComponentSpec(AssetSpec):
    """A command component (``type: command``)."""

    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {"resources", "distribution", "instance_count", "is_deterministic", "properties"}
    )

    type: Literal["command"] = "command"
    display_name: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    outputs: dict[str, OutputSpec] = Field(default_factory=dict)
    code: str | None = None
    environment: str | EnvironmentSpec
    command: str
    #: Folders or files copied into the root of the code snapshot (Azure ML's
    #: ``additional_includes``).
    additional_includes: list[str] = Field(default_factory=list)
    #: Filled at registration: the stored snapshot of ``code``.
    code_artifact: dict[str, Any] | None = None

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _short(cls, value: object) -> object:
        if isinstance(value, dict):  # an empty declaration is a uri_folder (outputs)
            return {k: {} if v is None else _input_type_default(v) for k, v in value.items()}
        return value if value is not None else {}

    _inline_env = field_validator("environment", mode="before")(
        classmethod(lambda cls, v: inline_environment(v)))

    @field_validator("code")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        return None if value is None else validate_path_text(value, what="code path")

    @model_validator(mode="after")
    def _command(self) -> ComponentSpec:
        check_command(self.command, self.inputs, self.outputs)
        return self

    def content(self) -> dict[str, Any]:
        data = super().content()
        if data.get("code_artifact"):
            data.pop("code", None)  # the snapshot counts, not where it was taken from
            data.pop("additional_includes", None)
        if isinstance(data.get("environment"), dict):
            data["environment"].pop("name", None)
        return data


class Component(Asset):
    def extra_fields(self) -> dict[str, Any]:
        return {
            "inputs": sorted(self.spec.get("inputs", {})),
            "outputs": sorted(self.spec.get("outputs", {})),
            "environment": self.spec.get("environment")
            if isinstance(self.spec.get("environment"), str)
            else "(inline)",
        }
