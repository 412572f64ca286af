"""``EndpointMonitor``: a live view of one online endpoint (what ``%deploy`` returns).

Its deployments with state, replicas, traffic and restarts; the scoring URI; the log of one
deployment, followed from where the previous poll stopped; and a test box that sends a JSON body
and shows the answer, the deployment that answered and the latency. A daemon thread polls every
``poll_s`` seconds until the widget is closed, :meth:`stop` is called or ``follow_s`` seconds
passed (an endpoint never "ends" as a job does; "Refresh" follows again). As in the job monitor,
trait changes go out through ipykernel's thread-safe IOPub.
"""

from __future__ import annotations

import html
import json
import threading
import time
from typing import Any

import ipywidgets as widgets

from jupyter_mlws.errors import MlwsError
from jupyter_mlws.widgets import html_table
from jupyter_mlws.widgets.job_monitor import LogTail

_COLORS = {"Creating": "#0d6efd", "Succeeded": "#198754", "Failed": "#dc3545",
           "Deleting": "#fd7e14"}
_PRE = ("margin:0;padding:4px 6px;max-height:260px;overflow:auto;background:#f7f7f7;"
        "font-size:11px;line-height:1.35;white-space:pre-wrap;word-break:break-all")
#: The traffic split's choice in the deployment picker of the test box.
BY_TRAFFIC = "(traffic split)"


def _badge(state: str) -> str:
    color = _COLORS.get(state, "#6c757d")
    return (f"<span style='background:{color};color:white;padding:1px 7px;border-radius:9px'>"
            f"{html.escape(state)}</span>")


class EndpointMonitor(widgets.VBox):
    """The endpoint ``name``, following the log of ``deployment`` (default: the first one).

    The state is plain attributes: ``endpoint`` (the endpoint's view), ``deployments`` (their
    views), ``log_lines``, ``last_result`` (the test box's last answer), ``polls``, ``error``.
    """

    def __init__(self, ws: Any, name: str, deployment: str | None = None, *,
                 poll_s: float = 1.0, follow_s: float = 1800.0, tail_lines: int = 40,
                 autostart: bool = True, sample: Any = None) -> None:
        self.ws = ws
        self.name = name
        self.poll_s = poll_s
        self.follow_s = follow_s
        self.endpoint: dict[str, Any] = ws.endpoints.show(name)  # unknown: fails here
        self.deployments: list[dict[str, Any]] = []
        self.deployment = deployment
        self.last_result: dict[str, Any] | None = None
        self.polls = 0
        self.error: str | None = None
        self._tail_lines = tail_lines
        self._tail: LogTail | None = None
        self._tail_of: str | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

        self._title = widgets.HTML()
        self._table = widgets.HTML()
        self._message = widgets.HTML()
        self._log_title = widgets.HTML()
        self._log = widgets.HTML()
        self._body = widgets.Textarea(
            value=json.dumps(sample if sample is not None else {"data": [[1, 2, 3]]}),
            placeholder='{"data": [[1, 2, 3]]}', description="Request",
            layout=widgets.Layout(width="100%", height="70px"))
        self._pick = widgets.Dropdown(options=[BY_TRAFFIC], value=BY_TRAFFIC,
                                      description="Deployment",
                                      layout=widgets.Layout(width="280px"))
        self._send = widgets.Button(description="Send", icon="paper-plane",
                                    button_style="primary", layout=widgets.Layout(width="auto"))
        self._send.on_click(lambda _b: self.send())
        self._refresh = widgets.Button(description="Refresh", icon="refresh",
                                       layout=widgets.Layout(width="auto"))
        self._refresh.on_click(lambda _b: self.refresh())
        self._answer = widgets.HTML()
        super().__init__(children=[
            widgets.HBox([self._title, self._refresh],
                         layout=widgets.Layout(align_items="center")),
            self._table, self._message, self._log_title, self._log,
            widgets.HTML("<b>Test</b>"), self._body,
            widgets.HBox([self._pick, self._send]), self._answer,
        ], layout=widgets.Layout(border="1px solid #ddd", padding="6px"))
        self.poll()
        if autostart:
            self.start()

    # --- polling --------------------------------------------------------------------------

    @property
    def log_lines(self) -> list[str]:
        return list(self._tail.lines) if self._tail is not None else []

    @property
    def following(self) -> bool:
        """Whether a background thread polls now."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Poll in a background thread for ``follow_s`` seconds (again when it had stopped)."""
        with self._lock:
            if self.following:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name=f"mlws-endpoint-{self.name}")
            self._thread.start()

    def refresh(self) -> None:
        """Read everything once now, and follow again (what "Refresh" does)."""
        self.poll()
        self.start()

    def stop(self) -> None:
        """Stop polling (the widget keeps what it shows)."""
        self._stop.set()

    def _loop(self) -> None:
        until = time.monotonic() + self.follow_s
        while not self._stop.wait(self.poll_s):
            self.poll()
            if time.monotonic() > until:
                self._log_title.value += (" <span style='color:#666'>— stopped following "
                                          "(Refresh follows again)</span>")
                return

    def poll(self) -> None:
        """Read the endpoint, its deployments and the new log lines once, and redraw."""
        with self._lock:
            self.polls += 1
            try:
                self._poll()
                self.error = None
            except MlwsError as exc:  # deleted meanwhile: say so and stop following
                self.error = str(exc)
                self._stop.set()
            except Exception as exc:  # a transient store or file problem: try again next poll
                self.error = f"{type(exc).__name__}: {exc}"
            self._message.value = (f"<div style='color:#dc3545;font-size:12px'>"
                                   f"{html.escape(self.error)}</div>" if self.error else "")

    def _poll(self) -> None:
        from jupyter_mlws.endpoints.views import endpoint_with_deployments

        view = endpoint_with_deployments(self.ws, self.name)
        self.endpoint = view
        self.deployments = view["deployment_list"]
        names = [d["name"] for d in self.deployments]
        if self.deployment not in names:
            self.deployment = names[0] if names else None
        options = [BY_TRAFFIC, *names]
        if list(self._pick.options) != options:
            current = self._pick.value
            self._pick.options = options
            self._pick.value = current if current in options else BY_TRAFFIC
        self._follow_log()
        self._render()

    def _follow_log(self) -> None:
        from jupyter_mlws.endpoints.views import read_log

        if self.deployment is None:
            self._tail = None
            return
        if self._tail is None or self._tail_of != self.deployment:
            dep = self.deployment

            def chunk(offset: int) -> tuple[str, int]:
                got = read_log(self.ws, self.name, dep, offset)
                return got["text"], got["offset"]

            self._tail = LogTail(chunk, maxlen=self._tail_lines)
            self._tail_of = dep
        self._tail.read()

    # --- the test box -----------------------------------------------------------------------

    def send(self, body: str | None = None, deployment: str | None = None) -> dict[str, Any]:
        """Send ``body`` (default: the text box) as the request; returns and shows the answer
        (``status``, ``deployment``, ``latency_ms``, ``body``, ``json``)."""
        from jupyter_mlws.endpoints.views import timed_invoke

        text = self._body.value if body is None else body
        pick = deployment or (None if self._pick.value == BY_TRAFFIC else self._pick.value)
        try:
            result = timed_invoke(self.ws, self.name, text.encode("utf-8"), deployment=pick)
        except MlwsError as exc:
            result = {"status": None, "ok": False, "deployment": pick, "latency_ms": None,
                      "body": str(exc), "json": None, "truncated": False}
        self.last_result = result
        self._answer.value = _answer_html(result)
        return result

    def close(self) -> None:
        """Stop polling and close the widget."""
        if hasattr(self, "_stop"):
            self.stop()
        super().close()

    def __repr__(self) -> str:
        states = ", ".join(f"{d['name']}={d['state']}" for d in self.deployments)
        return f"EndpointMonitor(endpoint={self.name}, {states or 'no deployments'})"

    # --- rendering --------------------------------------------------------------------------

    def _render(self) -> None:
        ep = self.endpoint
        self._title.value = (
            f"<b>Endpoint</b> <code>{html.escape(self.name)}</code> "
            f"<span style='color:#666'>scoring URI</span> "
            f"<code>{html.escape(str(ep.get('scoring_uri')))}</code>")
        rows = [(d["name"], d["state"], f"{d['replicas_ready']}/{d['instance_count']}",
                 f"{d['traffic']}%", d.get("restarts", 0), d.get("model") or "",
                 d.get("environment") or "(the kernel's interpreter)")
                for d in self.deployments]
        table = html_table(["deployment", "state", "replicas", "traffic", "restarts", "model",
                            "environment"], rows) if rows else "<i>No deployment yet.</i>"
        for d in self.deployments:  # colour the states
            table = table.replace(f">{html.escape(d['state'])}</td>",
                                  f">{_badge(d['state'])}</td>", 1)
        errors = "".join(f"<pre style='{_PRE};color:#dc3545'>{html.escape(d['name'])}: "
                         f"{html.escape(d['error'])}</pre>"
                         for d in self.deployments if d.get("state") == "Failed" and d.get("error"))
        self._table.value = table + errors
        if self.deployment is not None:
            self._log_title.value = (f"<b>Log</b> of <code>{html.escape(self.deployment)}"
                                     "</code> (followed)")
            self._log.value = (f"<pre style='{_PRE}'>"
                               f"{html.escape(chr(10).join(self.log_lines) or '(nothing yet)')}"
                               "</pre>")


def _answer_html(result: dict[str, Any]) -> str:
    if result["status"] is None:
        return f"<div style='color:#dc3545'>{html.escape(result['body'])}</div>"
    color = "#198754" if result["ok"] else "#dc3545"
    shown = (json.dumps(result["json"], indent=2) if result["json"] is not None
             else result["body"])
    return (f"<div><b style='color:{color}'>{result['status']}</b> from "
            f"<code>{html.escape(str(result['deployment']))}</code> in "
            f"{result['latency_ms']:.1f} ms</div><pre style='{_PRE}'>{html.escape(shown)}</pre>")
