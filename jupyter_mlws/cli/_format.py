"""How the surfaces show things: tables, sizes, times, and JSON/YAML output.

Shared by the ``mlws`` command and the notebook magics and widgets, so a table or a size reads the
same in a terminal and in a notebook.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click
import yaml

from jupyter_mlws.fileio import human_size

_TABLE_STYLE = "border-collapse:collapse;font-size:12px;margin:2px 0;"
_CELL_STYLE = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"


def age(value: Any) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM`` (an ISO string is parsed first)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M")
    return str(value)


def cell_text(value: Any) -> str:
    """How one value reads in a table cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def align(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a plain-text table: the header line, then one per row, columns padded."""
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return lines


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned plain-text table (for terminals and papermill logs)."""
    return "\n".join(align(headers, [[cell_text(c) for c in row] for row in rows]))


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as escaped HTML."""
    head = "".join(f"<th style='{_CELL_STYLE}'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='{_CELL_STYLE}'>{html.escape(cell_text(c))}</td>"
                         for c in row) + "</tr>"
        for row in rows
    )
    return (f"<table style='{_TABLE_STYLE}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def print_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Print ``rows`` as an aligned table of ``(key, header)`` columns."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(r.get(k, "") if r.get(k) is not None else "") for k, _ in columns] for r in rows]
    for line in align([h.upper() for _, h in columns], cells):
        click.echo(line)


def to_yaml(data: Any, *, allow_unicode: bool = False) -> str:
    """``data`` as block YAML (anything JSON cannot hold becomes its ``str``)."""
    return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False,
                          allow_unicode=allow_unicode)


def emit(data: Any, output: str, *, table: Callable[[], None] | None = None) -> None:
    """Print ``data`` as JSON, YAML, or (``output == "table"``) by calling ``table``."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    elif output == "yaml" or table is None:
        click.echo(to_yaml(data))
    else:
        table()


def detail_lines(data: dict[str, Any]) -> list[str]:
    """A job detail (``JobDetail.public_dict()``) as the lines ``mlws job show`` prints."""
    lines = []
    for key in ("id", "type", "status", "display_name", "experiment", "compute", "environment",
                "image", "error"):
        if data.get(key):
            lines.append(f"{key + ':':<14}{data[key]}")
    for e in data["events"]:
        lines.append(f"  {age(e['at'])}  {e['status']}"
                     + (f"  {e['message']}" if e.get("message") else ""))
    if data["params"]:
        lines.append("params:       " + ", ".join(f"{k}={v}" for k, v in data["params"].items()))
    for io in data["inputs"]:
        lines.append(f"consumed:     {io['name']} <- {io['asset'] or io['uri'] or io['value']}")
    for io in data["outputs"]:
        lines.append(f"output:       {io['name']} -> {io['uri']}")
    for ref in data["produced"]:
        lines.append(f"produced:     {ref}")
    last = data["latest_metrics"]
    if last:
        lines.append("metrics:      " + ", ".join(f"{k}={v:g}" for k, v in last.items()))
    if data["progress"]:
        lines.append(f"progress:     {data['progress']['executed']}/{data['progress']['total']}"
                     " cells")
    if data["children"]:
        lines.append("steps:        " + ", ".join(data["children"]))
    return lines


__all__ = ["age", "align", "cell_text", "detail_lines", "emit", "html_table", "human_size",
           "print_table", "text_table", "to_yaml"]
