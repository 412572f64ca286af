"""Reading YAML specs with the file and line of every field, so errors can point at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from jupyter_mlws.errors import SpecError

LineIndex = dict[tuple[Any, ...], int]
M = TypeVar("M", bound=pydantic.BaseModel)


#: Bounds that keep a hostile or broken spec from exhausting the stack, memory or time.
MAX_SPEC_BYTES = 1024 * 1024
MAX_DEPTH = 64
#: Nodes a document may expand to, counting every alias as a copy of what it names.
MAX_NODES = 100_000


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's surprises that would change a spec's meaning, and with
    bounds: nesting depth, nodes after alias expansion (billion laughs), no duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._weights: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            if id(node) not in self._weights:  # an alias inside the node it names
                raise _LimitError("an alias refers to the node that contains it", event.start_mark)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _LimitError(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._weigh(node)
        return node

    def _weigh(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        weight = 1 + sum(self._weights.get(id(c), 1) for c in children)
        if weight > MAX_NODES:
            raise _LimitError(
                f"expands to more than {MAX_NODES} values (through aliases or sheer size)",
                node.start_mark,
            )
        self._weights[id(node)] = weight

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise _LimitError(
                    f"the key {short_text(key_node.value)!r} appears twice in one mapping "
                    f"(first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return node


class _LimitError(yaml.MarkedYAMLError):
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


# 'on'/'off'/'yes'/'no' stay strings (YAML 1.2 booleans are only true/false), and so do dates
# (YAML 1.2 has no timestamps; a date-like name, version or tag is text).
_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers
          if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


# Specs are JSON-shaped: no bytes, sets, ordered pairs or timestamps (an explicit tag for one of
# these is "could not determine a constructor", with its line).
_Loader.yaml_constructors = {
    tag: ctor for tag, ctor in yaml.SafeLoader.yaml_constructors.items()
    if tag is None or tag.rsplit(":", 1)[-1] not in ("binary", "set", "omap", "pairs", "timestamp")
}


def short_text(text: object, limit: int = 60) -> str:
    """``text`` printable on one line (control characters escaped) and at most ``limit`` long."""
    s = printable(str(text))
    return s if len(s) <= limit else s[: limit - 20] + "..." + s[-17:]


def printable(text: str) -> str:
    """``text`` with newlines and other control characters escaped, for one-line messages."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _index(node: yaml.Node, path: tuple[Any, ...], out: LineIndex) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _index(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), out)


def parse_yaml(text: str, *, source: str = "<string>") -> tuple[Any, LineIndex]:
    """Parse YAML text; return the data and a map from field path to 1-based line."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"the spec is larger than {MAX_SPEC_BYTES // 1024} KiB", file=source,
                        hint="Keep large content in files the spec points at.")
    loader = None
    try:
        loader = _Loader(text)  # reads the text: refuses control characters
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(
            ("" if isinstance(exc, _LimitError) else "not valid YAML: ")
            + _one_line(exc.problem or exc),
            file=source,
            line=line,
            hint=None if isinstance(exc, _LimitError)
            else "Check the indentation and quoting on that line.",
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {_one_line(exc)}", file=source) from None
    except (ValueError, OverflowError):  # e.g. an integer of more than 4300 digits
        raise SpecError("a number is too long or out of range", file=source,
                        hint="Quote it to keep it as text.") from None
    finally:
        if loader is not None:
            loader.dispose()
    index: LineIndex = {}
    if node is not None:
        _index(node, (), index)
    check_shape(data, source=source, index=index)
    return data, index


def _one_line(text: object) -> str:
    return short_text(" ".join(str(text).split()), 300)


def load_yaml(path: str | Path) -> tuple[Any, LineIndex]:
    """Read and parse a YAML file (at most :data:`MAX_SPEC_BYTES`)."""
    p = Path(path)
    where = short_text(p, 200)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError("file not found", file=where, hint="Check the path.") from None
    except (OSError, ValueError) as exc:  # a folder, a name too long, a NUL in the name...
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"cannot read the file: {reason}", file=where) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"the file is larger than {MAX_SPEC_BYTES // 1024} KiB", file=where,
                        hint="Keep large content in files the spec points at.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read the file: not UTF-8 text ({exc.reason} at byte "
                        f"{exc.start})", file=where) from None
    return parse_yaml(text, source=where)


#: Integers beyond 64 bits have no meaning in a spec (and become slow to print).
_INT_BITS = 63
_PLAIN = (str, int, float, bool, type(None))


def check_shape(data: Any, *, source: str | None = None, index: LineIndex | None = None) -> None:
    """Refuse what no spec needs and what breaks code downstream: nesting deeper than
    :data:`MAX_DEPTH` (or a cycle), more than :data:`MAX_NODES` values, NUL characters, integers
    beyond 64 bits, and values that are not JSON-shaped (bytes, sets, objects)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    count = 0
    while stack:
        value, loc = stack.pop()
        count += 1

        def fail(message: str, loc: tuple[Any, ...] = loc) -> SpecError:
            field = short_text(".".join(short_text(p, 40) for p in loc), 160) or None
            line = line_of(index, loc) if index else None
            return SpecError(message, file=source, line=line, field=field)

        if count > MAX_NODES:
            raise fail(f"the spec has more than {MAX_NODES} values", ())
        if len(loc) > MAX_DEPTH:
            raise fail(f"nested more than {MAX_DEPTH} levels deep (or it contains itself)")
        if isinstance(value, str):
            if "\x00" in value:
                raise fail("contains a NUL character")
        elif isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() > _INT_BITS:
                raise fail("the number is too large (at most 64 bits)")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, _PLAIN):
                    raise fail(f"a {type(key).__name__} cannot be a key; keys are text")
                if isinstance(key, str) and "\x00" in key:
                    raise fail("a key contains a NUL character")
                stack.append((item, loc + (key,)))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, loc + (i,)) for i, item in enumerate(value))
        elif not isinstance(value, (float, bool, type(None), *_OPAQUE)):
            raise fail(f"a {type(value).__name__} value cannot be part of a spec")


def _opaque_types() -> tuple[type, ...]:
    """Objects Python callers may pass that their own validators handle."""
    from datetime import date
    from pathlib import PurePath

    return (pydantic.BaseModel, PurePath, date, pydantic.SecretStr)


_OPAQUE = _opaque_types()


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
    check_shape(data, source=source, index=index)
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
    field = short_text(".".join(short_text(p, 40) for p in loc), 160) or None
    message = printable(" ".join(str(first["msg"]).split()))
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
