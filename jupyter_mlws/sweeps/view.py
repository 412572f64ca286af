"""One view of a sweep: its trials (values, status, primary metric, duration) sorted by the
objective, the best trial, and what went wrong when there is no best. The CLI, the magics and
the job monitor all render this view; metrics are read live through ``ws.jobs.metrics``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_mlws.errors import NotFoundError, ValidationError
from jupyter_mlws.sweeps.run import EARLY, read_state

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace


@dataclass
class TrialRow:
    number: int
    job: str | None
    params: dict[str, Any]
    status: str
    value: float | None = None
    duration_s: float | None = None
    reason: str | None = None
    carried_from: str | None = None
    #: interval -> value of the primary metric.
    values: dict[str, float] = field(default_factory=dict)


@dataclass
class SweepView:
    sweep: str
    status: str
    metric: str
    goal: str
    budget: int | None
    trials: list[TrialRow]
    best: TrialRow | None
    problem: str | None
    stopped: str | None = None

    def public_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep, "status": self.status,
                "objective": {"goal": self.goal, "primary_metric": self.metric},
                "budget": self.budget, "stopped": self.stopped, "problem": self.problem,
                "best": asdict(self.best) if self.best else None,
                "trials": [asdict(t) for t in self.trials]}

    def table_rows(self) -> list[dict[str, Any]]:
        """One flat row per trial, for text and HTML tables."""
        names = list(self.trials[0].params) if self.trials else []
        rows = []
        for t in self.trials:
            row: dict[str, Any] = {"trial": t.number, "job": t.job or ""}
            row.update({n: t.params.get(n) for n in names})
            row.update({"status": t.status, self.metric: "" if t.value is None else t.value,
                        "duration": "" if t.duration_s is None else f"{t.duration_s:.1f} s"})
            rows.append(row)
        return rows

    def columns(self) -> list[tuple[str, str]]:
        names = list(self.trials[0].params) if self.trials else []
        keys = ["trial", *names, "status", self.metric, "duration", "job"]
        return [(k, k) for k in keys]


def build_sweep_view(ws: Workspace, sweep_id: str) -> SweepView:
    """The sweep's trials as they are now."""
    job = ws.jobs.get(sweep_id)
    if job.type != "sweep":
        raise ValidationError(f"Job {job.id} is a {job.type} job, not a sweep.")
    spec = job.spec
    metric = spec["objective"]["primary_metric"]
    goal = spec["objective"]["goal"]
    state = read_state(ws, job.id)
    rows = [_row(ws, t, metric) for t in state.get("trials", [])]
    sign = -1.0 if goal == "maximize" else 1.0
    rows.sort(key=lambda r: (r.value is None, sign * (r.value or 0.0), r.number))
    done = [r for r in rows if r.status == "Completed" and r.value is not None]
    best = done[0] if done else None
    return SweepView(job.id, job.status, metric, goal, state.get("budget"), rows, best,
                     None if best else _problem(ws, rows, metric), state.get("stopped"))


def _row(ws: Workspace, t: dict[str, Any], metric: str) -> TrialRow:
    status = t.get("status", "Queued")
    duration = None
    values = dict(t.get("values") or {})
    if t.get("job"):
        try:
            child = ws.jobs.get(t["job"])
        except NotFoundError:
            child = None
        if child is not None:
            duration = child.duration_s
            if status not in ("Completed", "Failed", "Canceled", EARLY):
                status = child.status
            for i, m in enumerate(m for m in ws.jobs.metrics(child.id) if m.key == metric):
                values[str(m.step if m.step is not None else i + 1)] = m.value
    value = values[max(values, key=int)] if values else None
    return TrialRow(t["number"], t.get("job"), t.get("params") or {}, status, value, duration,
                    t.get("reason"), t.get("carried_from"), values)


def _problem(ws: Workspace, rows: list[TrialRow], metric: str) -> str | None:
    """Why there is no best trial (``None`` while none has ended)."""
    ended = [r for r in rows if r.status in ("Completed", "Failed", EARLY)]
    if not ended:
        return None
    if all(r.value is None for r in rows):
        logged = sorted({m.key for r in rows if r.job for m in ws.jobs.metrics(r.job)})
        return (f"no trial logged the primary metric {metric!r}"
                + (f" (the trials logged: {', '.join(logged)})" if logged else
                   " (the trials logged no metrics)")
                + "; log it with jupyter_mlws.run.log_metric or mlflow.log_metric, or set "
                "objective.primary_metric to a metric the trials log")
    failed = [r for r in ended if r.status != "Completed"]
    if len(failed) == len(ended):
        first = failed[0]
        return (f"all {len(failed)} ended trials failed; trial {first.number}: "
                f"{first.reason or first.status}")
    return None


def best_trial(ws: Workspace, sweep_id: str) -> str:
    """The job id of the sweep's best trial (an error saying why when there is none)."""
    view = build_sweep_view(ws, sweep_id)
    if view.best is None or view.best.job is None:
        done = view.status in ("Completed", "Failed", "Canceled")
        raise NotFoundError(f"Sweep {view.sweep} has no best trial" + ("" if done else " yet")
                            + (f": {view.problem}." if view.problem else
                               f" (it is {view.status}; no trial has completed with "
                               f"{view.metric!r})."),
                            hint=f"See its trials with `mlws job show {view.sweep}`.")
    return view.best.job
