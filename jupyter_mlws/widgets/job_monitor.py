"""``JobMonitor``: a live view of one job that keeps updating while other cells run.

A daemon thread polls the workspace every ``poll_s`` seconds and stops when the job ends (or the
widget is closed). Widget trait changes made from that thread go out as comm messages through
ipykernel's IOPub thread, which is safe to call from any thread. Logs are read incrementally: only
the bytes appended since the previous poll.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import ipywidgets as widgets

from jupyter_mlws.errors import MlwsError
from jupyter_mlws.widgets import html_table

_COLORS = {
    "Queued": "#6c757d", "Preparing": "#0d6efd", "Running": "#0d6efd",
    "Completed": "#198754", "Failed": "#dc3545", "Canceled": "#fd7e14",
}
_PRE_STYLE = (
    "margin:0;padding:4px 6px;max-height:320px;overflow:auto;background:#f7f7f7;"
    "font-size:11px;line-height:1.35;white-space:pre-wrap;word-break:break-all"
)


class LogTail:
    """The last ``maxlen`` lines of a growing log, each read from where the last read ended.

    ``read_chunk(offset)`` returns ``(text, new offset)``; the job monitor passes the facade's
    ``ws.jobs.read_log``.
    """

    def __init__(self, read_chunk: Callable[[int], tuple[str, int]], maxlen: int = 30) -> None:
        self._read_chunk = read_chunk
        self._offset = 0
        self._partial = ""
        self.lines: deque[str] = deque(maxlen=maxlen)
        self.count = 0

    @property
    def bytes_read(self) -> int:
        return self._offset

    def read(self) -> int:
        """Take in what was appended since the previous call; returns the new line count."""
        text, self._offset = self._read_chunk(self._offset)
        if not text:
            return 0
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            self.lines.append(line.rstrip("\r"))
        self.count += len(complete)
        return len(complete)

    def flush(self) -> int:
        """Take in the unterminated last line too (once the writer has finished)."""
        new = self.read()
        if self._partial:
            self.lines.append(self._partial)
            self._partial = ""
            self.count += 1
            new += 1
        return new


def sparkline_svg(points: Sequence[tuple[float, float]], *, width: int = 260,
                  height: int = 70) -> str:
    """An inline SVG polyline of ``(x, y)`` points, with the y range written beside it."""
    if not points:
        return ""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    pad = 4

    def sx(x: float) -> float:
        return pad + (width - 2 * pad) * ((x - x0) / (x1 - x0) if x1 > x0 else 0.5)

    def sy(y: float) -> float:
        return height - pad - (height - 2 * pad) * ((y - y0) / (y1 - y0) if y1 > y0 else 0.5)

    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    dots = "".join(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='2' fill='#0d6efd'/>"
                   for x, y in points[-1:])
    return (
        f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        "xmlns='http://www.w3.org/2000/svg' style='background:#fafafa;border:1px solid #eee'>"
        f"<polyline fill='none' stroke='#0d6efd' stroke-width='1.5' points='{coords}'/>{dots}"
        f"<text x='{pad}' y='11' font-size='9' fill='#666'>{y1:.4g}</text>"
        f"<text x='{pad}' y='{height - pad}' font-size='9' fill='#666'>{y0:.4g}</text></svg>"
    )


def _clock(at: datetime) -> str:
    return at.astimezone().strftime("%H:%M:%S")


class JobMonitor(widgets.VBox):
    """Status with a time per state, cell progress, a live log tail, metrics and a Cancel button.

    The state is plain attributes: ``status``, ``statuses`` (each status seen, in order),
    ``done``, ``polls``, ``progress``, ``log_lines``, ``metrics``, ``error``.
    """

    def __init__(self, ws: Any, job_id: str, *, poll_s: float = 0.5, tail_lines: int = 30,
                 autostart: bool = True) -> None:
        self.ws = ws
        self.job_id = job_id
        self.poll_s = poll_s
        self.status = ""
        self.statuses: list[str] = []
        self.done = False
        self.polls = 0
        self.progress: dict[str, int] | None = None
        self.metrics: list[Any] = []
        self.error: str | None = None
        self.sweep: Any = None  # a sweep's view (its trials), refreshed each poll
        self.job: Any = ws.jobs.get(job_id)  # an unknown id fails here, not in the thread
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._done_event = threading.Event()
        self._thread: threading.Thread | None = None
        paths = ws.jobs.paths(job_id)
        self._paths = paths
        def read_chunk(offset: int) -> tuple[str, int]:
            chunk = ws.jobs.read_log(job_id, offset)
            return chunk["text"], chunk["offset"]

        self._tail = LogTail(read_chunk, maxlen=tail_lines)

        self._title = widgets.HTML(layout=widgets.Layout(margin="0 12px 0 0"))
        self._cancel = widgets.Button(description="Cancel", icon="stop", button_style="warning",
                                      layout=widgets.Layout(width="auto"))
        self._cancel.on_click(self._on_cancel)
        self._timeline = widgets.HTML()
        self._bar = widgets.IntProgress(value=0, min=0, max=1, description="cells",
                                        layout=widgets.Layout(width="320px"))
        self._bar_label = widgets.Label()
        self._bar_row = widgets.HBox([self._bar, self._bar_label],
                                     layout=widgets.Layout(display="none"))
        self._log = widgets.HTML()
        self._metrics = widgets.HTML(layout=widgets.Layout(margin="0 16px 0 0"))
        self._plot = widgets.HTML()
        self._links = widgets.HTML()
        self._message = widgets.HTML()
        self._sweep = widgets.HTML()  # a sweep's trials (jupyter_mlws.widgets.sweep_view)
        super().__init__(children=[
            widgets.HBox([self._title, self._cancel],
                          layout=widgets.Layout(align_items="center")),
            self._timeline, self._bar_row, self._message, self._log,
            widgets.HBox([self._metrics, self._plot]), self._sweep,
            self._links,
        ], layout=widgets.Layout(border="1px solid #ddd", padding="6px"))
        self.poll()
        if autostart and not self.done:
            self.start()

    # --- the state machine -----------------------------------------------------------------

    @property
    def log_lines(self) -> list[str]:
        """The tail of the job's log (preparation, then what the job printed)."""
        return list(self._tail.lines)

    def start(self) -> None:
        """Poll in a background thread until the job ends (idempotent)."""
        if self._thread is not None or self.done:
            return
        self._thread = threading.Thread(target=self._loop, name=f"mlws-monitor-{self.job_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (the widget keeps what it shows)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (True), or ``timeout`` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done_event.wait(0.1):
            if self._thread is None or not self._thread.is_alive():
                self.poll()  # nobody polls in the background (not started, or stopped)
            if deadline is not None and time.monotonic() >= deadline:
                return self.done
        return True

    def _loop(self) -> None:
        while not self.done and not self._stop.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        """Read the job once and refresh what changed; finishes the monitor when the job ended."""
        with self._lock:
            if self.done:
                return
            self.polls += 1
            try:
                self._poll()
            except MlwsError as exc:
                self._message.value = _note(str(exc), "#dc3545")
            except Exception as exc:  # a transient store or file problem: try again next poll
                self._message.value = _note(f"{type(exc).__name__}: {exc}", "#dc3545")

    def _poll(self) -> None:
        job = self.ws.jobs.get(self.job_id)  # status first: when it is final, logs are complete
        self.job = job
        if job.status != self.status:
            self.status = job.status
            self.statuses.append(job.status)
        if job.done:
            self._tail.flush()
        else:
            self._tail.read()
        self.metrics = self.ws.jobs.metrics(self.job_id)
        if job.type == "notebook" and (job.status == "Running" or job.done
                                       or self.progress is None):
            self.progress = self.ws.jobs.progress(self.job_id)
        self.error = job.error
        if job.type == "sweep":
            from jupyter_mlws.widgets.sweep_view import sweep_html

            self.sweep = self.ws.jobs.sweep_view(self.job_id)
            self._sweep.value = sweep_html(self.sweep)
        self._render(job, self.ws.jobs.events(self.job_id))
        if job.done:
            self._links.value = self._render_links(job)
            self.done = True
            self._cancel.disabled = True
            self._cancel.description = job.status
            self._done_event.set()

    # --- actions ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel the job (what the button does)."""
        if self.done:
            return
        self._cancel.disabled = True
        self._cancel.description = "Canceling…"
        try:
            self.ws.jobs.cancel(self.job_id)
        except MlwsError as exc:
            self._message.value = _note(str(exc), "#dc3545")
            self._cancel.disabled = False
            self._cancel.description = "Cancel"
            return
        self.poll()

    def _on_cancel(self, _button: Any) -> None:
        self.cancel()

    def close(self) -> None:
        """Stop polling and close the widget."""
        if hasattr(self, "_stop"):  # not when __init__ failed early
            self.stop()
        super().close()

    def __repr__(self) -> str:
        return f"JobMonitor(job={self.job_id}, status={self.status or '?'})"

    # --- rendering -------------------------------------------------------------------------

    def _render(self, job: Any, events: list[Any]) -> None:
        color = _COLORS.get(job.status, "#333")
        what = " · ".join(html.escape(str(x)) for x in (
            job.display_name or job.type, f"compute {job.compute}",
            f"environment {job.environment}" if job.environment else "current interpreter",
        ))
        self._title.value = (
            f"<b>Job</b> <code>{html.escape(job.id)}</code> "
            f"<span style='background:{color};color:white;padding:1px 7px;border-radius:9px'>"
            f"{html.escape(job.status)}</span> <span style='color:#666'>{what}</span>"
        )
        self._timeline.value = _timeline(events, job)
        if self.progress:
            total = max(1, self.progress["total"])
            self._bar.max = total
            self._bar.value = min(self.progress["executed"], total)
            self._bar.bar_style = {"Completed": "success", "Failed": "danger"}.get(job.status, "")
            self._bar_label.value = f"{self.progress['executed']} / {self.progress['total']} cells"
            self._bar_row.layout.display = "flex"
        lines = self._tail.lines
        shown = "\n".join(lines) or "(no output yet)"
        skipped = self._tail.count - len(lines)
        head = f"… {skipped} earlier lines\n" if skipped > 0 else ""
        self._log.value = f"<pre style='{_PRE_STYLE}'>{html.escape(head + shown)}</pre>"
        self._message.value = _note(job.error.splitlines()[0], "#dc3545") if job.error else ""
        self._metrics.value, self._plot.value = _metrics_views(self.metrics)

    def _render_links(self, job: Any) -> str:
        rows: list[tuple[str, str]] = []
        if job.type == "notebook" and self._paths.notebook_out.exists():
            rows.append(("output notebook", str(self._paths.notebook_out)))
        try:
            io = self.ws.jobs.io(self.job_id)
        except MlwsError:
            io = []
        for item in io:
            if item.direction == "output":
                rows.append((f"output {item.name}",
                             f"{item.uri or ''}  →  {self._paths.outputs / item.name}"))
        rows.append(("logs", str(self._paths.logs)))
        return "".join(
            f"<div style='font-size:12px'><b>{html.escape(k)}</b>: <code>{html.escape(v)}</code>"
            "</div>" for k, v in rows)


def _note(text: str, color: str) -> str:
    return f"<div style='color:{color};font-size:12px'>{html.escape(text)}</div>"


def _timeline(events: list[Any], job: Any) -> str:
    if not events:
        return ""
    first = events[0].at
    parts = []
    for i, ev in enumerate(events):
        when = _clock(ev.at) if i == 0 else f"+{(ev.at - first).total_seconds():.1f} s"
        parts.append(f"<b>{html.escape(ev.status)}</b> {when}")
    if job.duration_s is not None:
        parts.append(f"ran {job.duration_s:.1f} s")
    return "<div style='font-size:12px;color:#444'>" + " → ".join(parts) + "</div>"


def _metrics_views(metrics: list[Any]) -> tuple[str, str]:
    if not metrics:
        return "", ""
    latest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for m in metrics:
        latest[m.key] = m
        counts[m.key] = counts.get(m.key, 0) + 1
    table = html_table(["metric", "latest", "step", "points"],
                       [(k, m.value, m.step, counts[k]) for k, m in latest.items()])
    key = metrics[-1].key
    series = [m for m in metrics if m.key == key]
    if len(series) < 2:
        return table, ""
    points = [(float(m.step if m.step is not None else i), m.value)
              for i, m in enumerate(series)]
    plot = (f"<div style='font-size:11px;color:#666'>{html.escape(key)}</div>"
            + sparkline_svg(points))
    return table, plot
