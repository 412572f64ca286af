"""Notebooks as job input: reading and checking them, and their parameters cell."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_mlws.errors import NotFoundError, ParameterTypeError, SpecError, ValidationError

#: Types a parameter is checked against (from its annotation, else its default's literal).
_CHECKED_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool}


def read_notebook(path: Path, cache_dir: Path | None = None) -> dict[str, Any]:
    """The notebook at ``path`` as JSON, refused with a SpecError unless it is a valid one
    (``cache_dir``: where the compiled schema validators are kept, see :mod:`.nb_schema`)."""
    if not path.is_file():
        raise NotFoundError(f"The notebook {str(path)!r} does not exist.")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"not a notebook: it is not valid JSON ({exc})", file=str(path)) from None
    if not isinstance(nb, dict) or "cells" not in nb or "nbformat" not in nb:
        raise SpecError("not a notebook: no 'cells' or 'nbformat'", file=str(path),
                        hint="Save it from Jupyter as .ipynb.")
    problem = _schema_problem(nb, cache_dir)
    if problem:
        raise SpecError(f"not a valid notebook: {problem}", file=str(path)) from None
    return nb


def _schema_problem(nb: dict[str, Any], cache_dir: Path | None = None) -> str | None:
    """What makes ``nb`` invalid against nbformat's JSON schema, else ``None``.

    A v4 notebook is checked against the schema file nbformat ships, compiled with
    fastjsonschema (one of nbformat's own validators); importing nbformat itself pulls in
    jsonschema, whose start-up costs seconds. Other versions go through nbformat (it converts).
    """
    from jupyter_mlws.jobs.nb_schema import v4_validator

    validator = v4_validator(nb.get("nbformat"), nb.get("nbformat_minor"), cache_dir)
    if validator is not None:
        import fastjsonschema

        try:
            validator(nb)
            return None
        except fastjsonschema.JsonSchemaException:
            pass  # nbformat may still read it (it repairs e.g. missing cell ids): ask it
    try:
        import nbformat

        nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))
    except Exception as exc:
        return str(exc).splitlines()[0]
    return None


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters cell of a notebook, as papermill sees it (name -> details: ``name``,
    ``inferred_type_name``, ``default``, ``help``).

    A Python cell is read with :mod:`ast` (papermill takes most of a second to import); a cell
    that does not parse, a line with more than one ``=`` (papermill skips those) or another
    language goes to ``papermill.inspect_notebook``.
    """
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        found = parameters_of(nb)
    except (OSError, ValueError, UnicodeDecodeError, TypeError, AttributeError):
        found = None
    if found is not None:
        return found
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def parameters_of(nb: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parameters of a Python notebook read with :mod:`ast`; ``None`` when only papermill
    can say (not Python, not parseable, a line papermill reads its own way)."""
    import ast

    meta = nb.get("metadata") or {}
    language = ((meta.get("kernelspec") or {}).get("language")
                or (meta.get("language_info") or {}).get("name") or "python")
    if str(language).lower() != "python":
        return None
    cell = next((c for c in nb.get("cells", []) if "parameters" in
                 ((c.get("metadata") or {}).get("tags") or [])), None)
    if cell is None:
        return {}
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    lines = source.splitlines()
    if any(line.count("=") > 1 and not line.strip().startswith("#") for line in lines):
        return None
    try:
        tree = ast.parse(source, type_comments=True)
    except (SyntaxError, ValueError):
        return None
    out: dict[str, Any] = {}
    for node in tree.body:
        found = _parameter(node, source, lines)
        if found is None:
            return None  # something papermill reads differently (a statement, a tuple...)
        out[found["name"]] = found
    return out


def _parameter(node: Any, source: str, lines: list[str]) -> dict[str, Any] | None:
    """A one-line ``name = value`` or ``name: type = value`` as papermill reports it; ``None``
    for anything papermill reads its own way (the caller then asks papermill)."""
    import ast
    import re

    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, annotation = node.targets[0], None
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        target, annotation = node.target, node.annotation
    else:
        return None
    if not isinstance(target, ast.Name) or node.value is None or node.lineno != node.end_lineno:
        return None
    line = lines[node.lineno - 1]
    value = ast.get_source_segment(source, node.value) or ""
    if node.col_offset != 0 or "#" in value or ";" in line:
        return None
    type_name = "None"
    if annotation is not None:
        type_name = (annotation.value if isinstance(annotation, ast.Constant)
                     and isinstance(annotation.value, str) else ast.unparse(annotation))
        if not re.fullmatch(r"\w[\w\[\],\s]*", type_name):
            return None
    tail = line[(node.value.end_col_offset or len(line)):].strip()
    help_text = ""
    if tail.startswith("#"):
        help_text = tail[1:].strip()
        if help_text.startswith("type:"):
            kind, _, help_text = help_text[len("type:"):].strip().partition(" ")
            if annotation is None:
                type_name = kind or "None"
            help_text = help_text.strip()
    elif tail:
        return None
    return {"name": target.id, "inferred_type_name": type_name.strip(),
            "default": value.strip(), "help": help_text}


def check_parameters(path: Path, params: Mapping[str, Any]) -> None:
    """Refuse parameters the notebook's parameters cell does not define, and values of another
    type than an ``int``, ``float`` or ``bool`` default (a number is fine for a number, unless
    the parameter is annotated ``int``)."""
    if not params:
        return
    known = notebook_parameters(path)
    if not known:
        raise ValidationError(
            f"The notebook {path.name} has no cell tagged 'parameters', so it takes none.",
            hint="Tag the cell that sets the defaults with 'parameters' (Property Inspector in "
            "JupyterLab).",
        )
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValidationError(
            f"Unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"{path.name}.",
            hint=f"Its parameters cell defines: {', '.join(known)}.",
        )
    for name, value in params.items():
        expected = expected_type(known[name])
        # `alpha = 1` takes 0.5 too: only `alpha: int = 1` insists on an int
        lenient = expected is int and _annotation(known[name]) is None
        if expected is not None and not _fits(value, float if lenient else expected):
            raise ParameterTypeError(
                f"The parameter {name!r} of {path.name} is {_article(expected)} "
                f"{expected.__name__} (its default is {known[name].get('default')}), but the "
                f"value given is {value!r} ({type(value).__name__}).",
                hint=f"Give {_article(expected)} {expected.__name__}, e.g. "
                f"{name}={known[name].get('default')} (a string in quotes stays a string).",
                parameter=name, expected=expected.__name__, value=value,
            )


def expected_type(info: Mapping[str, Any]) -> type | None:
    """``int``, ``float`` or ``bool`` when papermill's view of a parameter says so unambiguously
    (its annotation, else the literal type of its default); else ``None``."""
    annotated = _annotation(info)
    if annotated is not None:
        return annotated
    import ast

    try:
        default = ast.literal_eval(str(info.get("default")))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    kind = type(default)
    return kind if kind in (int, float, bool) else None


def _annotation(info: Mapping[str, Any]) -> type | None:
    return _CHECKED_TYPES.get(str(info.get("inferred_type_name")))


def _fits(value: Any, expected: type) -> bool:
    if value is None:
        return True  # None is how a notebook says "not set"
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, int)


def _article(kind: type) -> str:
    return "an" if kind.__name__[0] in "aeiou" else "a"


def notebook_progress(executed_nb: Path, submitted_nb: Path,
                      job_root: Path) -> dict[str, int] | None:
    """Cells executed so far out of all code cells (from papermill's cell metadata); the
    notebooks are read as job-written files (no links followed)."""
    from jupyter_mlws.errors import UnsafePathError
    from jupyter_mlws.jobs.safe_files import read_job_bytes

    for path in (executed_nb, submitted_nb):
        if path.exists():
            try:
                cells = json.loads(read_job_bytes(path, job_root))["cells"]
            except (ValueError, KeyError, TypeError, OSError, UnsafePathError):
                return None
            code = [c for c in cells if c.get("cell_type") == "code"]
            done = sum(1 for c in code
                       if c.get("metadata", {}).get("papermill", {}).get("status")
                       == "completed")
            return {"executed": done if path == executed_nb else 0, "total": len(code)}
    return None
