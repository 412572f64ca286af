"""Notebook widgets (ipywidgets 8, no custom JavaScript): a live job monitor and an asset browser.

``JobMonitor`` and ``AssetBrowser`` load on first use; the table helpers (from
:mod:`jupyter_mlws.cli._format`) are shared with the CLI and the magics, which show the same
tables as HTML with a plain-text fallback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jupyter_mlws.cli._format import cell_text, html_table, text_table

if TYPE_CHECKING:
    from jupyter_mlws.widgets.asset_browser import AssetBrowser
    from jupyter_mlws.widgets.job_monitor import JobMonitor

__all__ = ["AssetBrowser", "JobMonitor", "cell_text", "html_table", "text_table"]


def __getattr__(name: str) -> Any:
    if name == "JobMonitor":
        from jupyter_mlws.widgets.job_monitor import JobMonitor

        return JobMonitor
    if name == "AssetBrowser":
        from jupyter_mlws.widgets.asset_browser import AssetBrowser

        return AssetBrowser
    raise AttributeError(f"module 'jupyter_mlws.widgets' has no attribute {name!r}")
