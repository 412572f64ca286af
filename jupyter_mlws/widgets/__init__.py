"""Notebook widgets (ipywidgets 8, no custom JavaScript): a live job monitor and an asset browser.

``JobMonitor`` and ``AssetBrowser`` load on first use; the table helpers below are shared with the
magics, which show the same tables as HTML with a plain-text fallback.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_mlws.widgets.asset_browser import AssetBrowser
    from jupyter_mlws.widgets.job_monitor import JobMonitor

__all__ = ["AssetBrowser", "JobMonitor", "html_table", "text_table"]

_TABLE_STYLE = (
    "border-collapse:collapse;font-size:12px;margin:2px 0;"
)
_CELL_STYLE = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"


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


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An escaped HTML table."""
    head = "".join(f"<th style='{_CELL_STYLE}'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='{_CELL_STYLE}'>{html.escape(cell_text(c))}</td>"
                         for c in row) + "</tr>"
        for row in rows
    )
    return f"<table style='{_TABLE_STYLE}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as aligned plain text (for terminals and papermill logs)."""
    cells = [[cell_text(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def __getattr__(name: str) -> Any:
    if name == "JobMonitor":
        from jupyter_mlws.widgets.job_monitor import JobMonitor

        return JobMonitor
    if name == "AssetBrowser":
        from jupyter_mlws.widgets.asset_browser import AssetBrowser

        return AssetBrowser
    raise AttributeError(f"module 'jupyter_mlws.widgets' has no attribute {name!r}")
