"""A sweep as HTML for the job monitor: the trials table (best first), the best trial, the
primary metric by trial (with the best so far) and parallel coordinates of the parameters
against the metric. Plain inline SVG: no chart library for two small plots."""

from __future__ import annotations

import html
import math
from typing import Any

from jupyter_mlws.widgets import html_table

_STATUS_COLORS = {"Completed": "#198754", "Failed": "#dc3545", "Running": "#0d6efd",
                  "Canceled": "#fd7e14", "Canceled (early termination)": "#adb5bd"}


def sweep_html(view: Any) -> str:
    """The whole sweep section for ``view`` (a :class:`~jupyter_mlws.sweeps.view.SweepView`)."""
    cols = view.columns()
    rows = [[r.get(k) for k, _ in cols] for r in view.table_rows()]
    head = (f"<div style='font-size:12px'><b>objective</b>: {html.escape(view.goal)} "
            f"<code>{html.escape(view.metric)}</code> · {len(view.trials)}"
            + (f"/{view.budget}" if view.budget else "") + " trials</div>")
    if view.best is not None:
        b = view.best
        shown = ", ".join(f"{k}={v!r}" for k, v in b.params.items())
        head += (f"<div style='font-size:12px;color:#198754'><b>best</b>: trial {b.number} "
                 f"(<code>{html.escape(str(b.job))}</code>) {html.escape(view.metric)}="
                 f"{b.value:.6g} with {html.escape(shown)}</div>")
    elif view.problem:
        head += f"<div style='font-size:12px;color:#dc3545'>{html.escape(view.problem)}</div>"
    table = html_table([h for _, h in cols], rows) if rows else "<i>no trials yet</i>"
    plots = metric_by_trial_svg(view) + parallel_coordinates_svg(view)
    return head + f"<div style='display:flex;gap:12px;flex-wrap:wrap'>{table}{plots}</div>"


def metric_by_trial_svg(view: Any, *, width: int = 300, height: int = 150) -> str:
    """Each trial's metric (colored by status) and the best so far, by trial number."""
    pts = sorted((t.number, t.value, t.status) for t in view.trials if t.value is not None)
    if not pts:
        return ""
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    sx, sy = _scale(min(xs), max(xs), 24, width - 8), _scale(min(ys), max(ys), height - 18, 8)
    dots = "".join(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='3' "
                   f"fill='{_STATUS_COLORS.get(s, '#666')}'><title>trial {x}: {y:.6g} ({s})"
                   "</title></circle>" for x, y, s in pts)
    best: list[str] = []
    current: float | None = None
    for x, y, s in pts:
        if s != "Completed":
            continue
        if current is None or (y > current if view.goal == "maximize" else y < current):
            current = y
        best.append(f"{sx(x):.1f},{sy(current):.1f}")
    line = (f"<polyline fill='none' stroke='#198754' stroke-dasharray='4 2' "
            f"points='{' '.join(best)}'/>" if len(best) > 1 else "")
    return (f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg' "
            "style='background:#fafafa;border:1px solid #eee'>"
            f"<text x='4' y='12' font-size='10' fill='#444'>{html.escape(view.metric)} by "
            f"trial</text>{line}{dots}"
            f"<text x='4' y='{height - 4}' font-size='9' fill='#666'>{min(ys):.4g} .. "
            f"{max(ys):.4g}</text></svg>")


def parallel_coordinates_svg(view: Any, *, width: int = 360, height: int = 150) -> str:
    """One axis per numeric parameter and one for the metric; one line per trial."""
    trials = [t for t in view.trials if t.value is not None]
    if not trials:
        return ""
    names = [n for n in trials[0].params if all(_number(t.params.get(n)) for t in trials)]
    cats = [n for n in trials[0].params if n not in names]
    axes = [*names, *cats, view.metric]
    if len(axes) < 2:
        return ""
    def value(t: Any, axis: str) -> float:
        if axis == view.metric:
            return float(t.value)
        v = t.params.get(axis)
        if axis in cats:
            order = sorted({repr(x.params.get(axis)) for x in trials})
            return float(order.index(repr(v)))
        return float(v)

    ranges = {a: (min(value(t, a) for t in trials), max(value(t, a) for t in trials))
              for a in axes}
    step = (width - 40) / (len(axes) - 1)
    lo_m, hi_m = ranges[view.metric]
    lines = []
    for t in trials:
        pts = []
        for i, a in enumerate(axes):
            lo, hi = ranges[a]
            pts.append(f"{20 + i * step:.1f},{_scale(lo, hi, height - 20, 14)(value(t, a)):.1f}")
        share = (t.value - lo_m) / (hi_m - lo_m) if hi_m > lo_m else 1.0
        good = share if view.goal == "maximize" else 1 - share
        color = f"hsl({int(120 * good)},70%,42%)"
        lines.append(f"<polyline fill='none' stroke='{color}' stroke-opacity='0.8' "
                     f"points='{' '.join(pts)}'><title>trial {t.number}</title></polyline>")
    labels = "".join(
        f"<line x1='{20 + i * step:.1f}' y1='14' x2='{20 + i * step:.1f}' y2='{height - 20}' "
        f"stroke='#ccc'/><text x='{20 + i * step:.1f}' y='{height - 6}' font-size='9' "
        f"text-anchor='middle' fill='#444'>{html.escape(a[:14])}</text>"
        for i, a in enumerate(axes))
    return (f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg' "
            f"style='background:#fafafa;border:1px solid #eee'>{labels}{''.join(lines)}</svg>")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _scale(lo: float, hi: float, a: float, b: float) -> Any:
    def f(v: float) -> float:
        return (a + b) / 2 if hi <= lo else a + (b - a) * (v - lo) / (hi - lo)

    return f
