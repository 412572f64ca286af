"""Reading YAML specs with the file and line of every field, so errors can point at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from jupyter_mlws.errors import SpecError

LineIndex = dict[tuple[Any, ...], int]
M = TypeVar("M", bound=pydantic.BaseModel)


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's surprises that would change a spec's meaning."""


# 'on'/'off'/'yes'/'no' stay strings (YAML 1.2 booleans are only true/false).
_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _index(node: yaml.Node, path: tuple[Any, ...], out: LineIndex) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _index(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), out)


def parse_yaml(text: str, *, source: str = "<string>") -> tuple[Any, LineIndex]:
    """Parse YAML text; return the data and a map from field path to 1-based line."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(
            f"not valid YAML: {exc.problem or exc}",
            file=source,
            line=line,
            hint="Check the indentation and quoting on that line.",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", file=source) from None
    index: LineIndex = {}
    if node is not None:
        _index(node, (), index)
    return data, index


def load_yaml(path: str | Path) -> tuple[Any, LineIndex]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", file=str(p), hint="Check the path.") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the file: {exc}", file=str(p)) from None
    return parse_yaml(text, source=str(p))


def line_of(index: LineIndex, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest known prefix of ``loc``."""
    for end in range(len(loc), -1, -1):
        line = index.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def validate_spec(
    model: type[M],
    data: Any,
    *,
    source: str | None = None,
    index: LineIndex | None = None,
) -> M:
    """Validate ``data`` into ``model``; the first problem becomes a :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError(
            f"expected a mapping of fields, got {type(data).__name__}",
            file=source,
            line=1 if source else None,
        )
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise spec_error_from(exc, source=source, index=index) from None


def spec_error_from(
    exc: pydantic.ValidationError, *, source: str | None, index: LineIndex | None
) -> SpecError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    # pydantic puts union/tag discriminators in the loc; keep only data keys.
    field = ".".join(str(p) for p in loc) or None
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
        hint = "Remove it or check its spelling against the schema (`mlws schema`)."
    elif first["type"] == "missing":
        message = "this field is required"
        hint = None
    else:
        hint = None
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(
        errors
    ) > 1 else ""
    line = line_of(index, loc) if index else None
    return SpecError(message + more, file=source, line=line, field=field, hint=hint)
