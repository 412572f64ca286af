"""Notebooks as job input: reading and checking them, and their parameters cell."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_mlws.errors import NotFoundError, ParameterTypeError, SpecError, ValidationError

#: Types a parameter is checked against (from its annotation, else its default's literal).
_CHECKED_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool}


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook at ``path`` as JSON, refused with a SpecError unless it is a valid one."""
    if not path.is_file():
        raise NotFoundError(f"The notebook {str(path)!r} does not exist.")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"not a notebook: it is not valid JSON ({exc})", file=str(path)) from None
    if not isinstance(nb, dict) or "cells" not in nb or "nbformat" not in nb:
        raise SpecError("not a notebook: no 'cells' or 'nbformat'", file=str(path),
                        hint="Save it from Jupyter as .ipynb.")
    try:
        import nbformat

        nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))
    except Exception as exc:
        raise SpecError(f"not a valid notebook: {str(exc).splitlines()[0]}",
                        file=str(path)) from None
    return nb


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters cell of a notebook, as papermill sees it (name -> details)."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


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
