"""``AssetBrowser``: pick a kind, then a name, and see its versions with tags and lineage.

Lineage is the producing job for models and data (registered from a job output), and for a job
what it consumed (inputs) and produced (outputs, and the assets registered from them).
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from jupyter_mlws.cli._format import age, html_table
from jupyter_mlws.errors import MlwsError

KINDS: tuple[tuple[str, str], ...] = (
    ("Models", "model"), ("Data", "data"), ("Environments", "environment"),
    ("Components", "component"), ("Jobs", "job"),
)
JOB_LIMIT = 100


class AssetBrowser(widgets.VBox):
    """Kind dropdown → name list → versions table. ``headers``/``rows`` hold what the table shows."""

    def __init__(self, ws: Any, kind: str = "model") -> None:
        self.ws = ws
        self.headers: list[str] = []
        self.rows: list[list[Any]] = []
        self._kind = widgets.Dropdown(options=list(KINDS), value=kind, description="Kind",
                                      layout=widgets.Layout(width="240px"))
        self._refresh = widgets.Button(description="Refresh", icon="refresh",
                                       layout=widgets.Layout(width="auto"))
        self._names = widgets.Select(options=[], rows=10, layout=widgets.Layout(width="300px"))
        self._details = widgets.HTML(layout=widgets.Layout(margin="0 0 0 12px"))
        self._kind.observe(lambda _change: self.refresh(), names="value")
        self._names.observe(lambda _change: self._show(), names="value")
        self._refresh.on_click(lambda _button: self.refresh())
        super().__init__(children=[
            widgets.HBox([self._kind, self._refresh]),
            widgets.HBox([self._names, self._details]),
        ])
        self.refresh()

    @property
    def kind(self) -> str:
        return str(self._kind.value)

    @property
    def names(self) -> list[str]:
        """What the name list offers (job ids for jobs)."""
        return [value for _label, value in self._names.options]

    def select(self, kind: str | None = None, name: str | None = None) -> None:
        """Show ``kind`` and ``name`` (as clicking them would)."""
        if kind is not None and kind != self.kind:
            self._kind.value = kind
        if name is not None:
            self._names.value = name

    def __repr__(self) -> str:
        return f"AssetBrowser(kind={self.kind})"

    def refresh(self) -> None:
        """Reload the names of the chosen kind."""
        try:
            if self.kind == "job":
                jobs = self.ws.jobs.list(limit=JOB_LIMIT)
                options = [(f"{j.id} · {j.display_name or j.type} · {j.status}", j.id)
                           for j in jobs]
            else:
                options = [(n, n) for n in sorted(self.ws.operations(self.kind).names())]
        except MlwsError as exc:
            self._details.value = _error(exc)
            return
        self._names.options = options
        if options:
            self._names.value = options[0][1]
        else:
            self.headers, self.rows = [], []
            self._details.value = f"<i>No {html.escape(self.kind)} registered yet.</i>"

    def _show(self) -> None:
        name = self._names.value
        if name is None:
            return
        try:
            if self.kind == "job":
                self._details.value = self._job(name)
            else:
                self._details.value = self._versions(name)
        except MlwsError as exc:
            self._details.value = _error(exc)

    def _versions(self, name: str) -> str:
        versions = self.ws.operations(self.kind).list(name, include_archived=True)
        if self.kind == "environment":
            self.headers = ["version", "created", "hash", "image", "tags", "description"]
            self.rows = [[v.version, age(v.created_at), v.env_hash[:12], v.image, v.tags,
                          v.description] for v in versions]
        else:
            self.headers = ["version", "created", "type", "tags", "produced by job", "source",
                            "archived"]
            self.rows = [[v.version, age(v.created_at), v.spec.get("type"), v.tags, v.job_id,
                          v.spec.get("source") or v.spec.get("path"),
                          "yes" if v.archived else ""] for v in versions]
        return f"<b>{html.escape(name)}</b>" + html_table(self.headers, self.rows)

    def _job(self, job_id: str) -> str:
        detail = self.ws.jobs.detail(job_id)  # the JobDetail the CLI and REST show
        job = detail.job
        self.headers = ["direction", "name", "type", "asset / uri / value"]
        self.rows = [[io.direction, io.name, io.type,
                      io.asset or io.uri or ("" if io.value is None else io.value)]
                     for io in [*detail.inputs, *detail.outputs]]
        self.rows += [["registered", ref.split(":", 1)[1], ref.split(":", 1)[0], ref]
                      for ref in detail.produced]
        params = detail.params
        summary = (
            f"<b>{html.escape(job.id)}</b> {html.escape(job.display_name or job.type)} · "
            f"{html.escape(job.status)} · compute {html.escape(job.compute)}"
            + (f" · environment {html.escape(job.environment)}" if job.environment else "")
            + f" · {age(job.created_at)}"
        )
        if params:
            summary += "<br>parameters: " + html.escape(
                ", ".join(f"{k}={v!r}" for k, v in params.items()))
        return summary + html_table(self.headers, self.rows)


def _error(exc: MlwsError) -> str:
    return f"<span style='color:#dc3545'>{html.escape(str(exc))}</span>"
