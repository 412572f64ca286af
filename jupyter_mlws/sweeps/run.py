"""A sweep on the job template (:class:`SweepRun`): preparing builds the sampler (and replays
the trials a resumed sweep keeps), starting returns a :class:`SweepHandle` whose polls submit
trials up to ``max_concurrent_trials``, feed their primary metric to the sampler, cancel the
trials early termination stops, and end when the budget is spent. The template owns the
sweep's states and its cancel (the handle's ``stop`` cancels the running trials).

The runner writes ``sweep.json`` in the sweep's folder: every trial's number, job, values
and how it ended (``Canceled (early termination)`` with the policy's reason).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from jupyter_mlws.compute.base import JobTemplate, RunContext, Runtime
from jupyter_mlws.errors import MlwsError
from jupyter_mlws.fileio import write_json_atomic
from jupyter_mlws.jobs.model import JobStatus
from jupyter_mlws.jobs.safe_files import open_log_for_append, read_job_json
from jupyter_mlws.sweeps.sampler import Policy, Sampler
from jupyter_mlws.sweeps.space import parse_space

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace

POLL_S = 0.1
STATE_FILE = "sweep.json"
EARLY = "Canceled (early termination)"
FINAL = ("Completed", "Failed", EARLY)


def read_state(ws: Workspace, sweep_id: str) -> dict[str, Any]:
    """What the sweep's runner wrote (``{}`` before it started)."""
    paths = ws.jobs.paths(sweep_id)
    return read_job_json(paths.root / STATE_FILE, paths.root) or {}


def primary_series(ws: Workspace, job_id: str, metric: str) -> list[tuple[int, float]]:
    """(interval, value) of the primary metric a trial logged: its ``step``, else 1, 2, ..."""
    values = [m for m in ws.jobs.metrics(job_id) if m.key == metric]
    return [(m.step if m.step is not None else i + 1, m.value) for i, m in enumerate(values)]


def build_sampler(spec: dict[str, Any], carried: int = 0) -> Sampler:
    """The sweep's sampler; a resumed sweep that kept ``carried`` trials shifts the seed, so
    its draws are not those of the trials it kept."""
    algo = spec.get("sampling_algorithm") or {}
    policy = spec.get("early_termination")
    seed = algo.get("seed")
    if seed is not None and carried:
        seed = int(seed) + 7919 * carried
    return Sampler(
        parse_space(spec["search_space"]), algo.get("type", "random"),
        spec["objective"]["goal"], seed=seed, rule=algo.get("rule", "random"),
        policy=Policy(**{k: v for k, v in policy.items() if k in Policy.__dataclass_fields__})
        if policy else None)


class SweepHandle:
    """The running sweep: each poll starts trials, follows them and applies the policy."""

    def __init__(self, ws: Workspace, ctx: RunContext, spec: dict[str, Any],
                 sampler: Sampler, carried: list[dict[str, Any]]) -> None:
        self.started_at = time.time()
        self._ws = ws
        self._ctx = ctx
        self._spec = spec
        self._sampler = sampler
        self._metric = spec["objective"]["primary_metric"]
        limits = spec.get("limits") or {}
        budget = int(limits.get("max_total_trials", 1000))
        grid = sampler.grid_size
        self.budget = min(budget, grid) if grid is not None else budget
        self.concurrent = int(limits.get("max_concurrent_trials") or self._slots(budget))
        self.timeout = limits.get("timeout")
        self.trials: list[dict[str, Any]] = carried
        self.stopped: str | None = None
        self._next_poll = 0.0
        self._dirty = True

    def _slots(self, budget: int) -> int:
        """Without max_concurrent_trials (Azure: all at once), as many trials as the compute
        runs at once, so that a 1000-trial sweep does not start 1000 waiting runners."""
        compute = self._ws.computes.get(self._ws.jobs.get(self._ctx.job_id).compute)
        return max(1, min(budget, int(compute.spec.get("max_concurrent_jobs", 1))))

    def _say(self, text: str) -> None:
        """A line in the sweep's log (skipped when a link was planted there)."""
        with contextlib.suppress(OSError), open_log_for_append(self._ctx.paths.job_log) as f:
            f.write(f"[sweep] {text}\n".encode())

    @property
    def active(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t["status"] not in FINAL and t["status"] != "Canceled"]

    def poll(self) -> int | None:
        now = time.monotonic()
        if now < self._next_poll:
            return None
        self._next_poll = now + POLL_S
        if self.timeout and time.time() - self.started_at > float(self.timeout) and not self.stopped:
            self.stop()
            self.stopped = f"the sweep's timeout ({self.timeout} s) was reached"
        self._collect()
        if not self.stopped:
            self._submit()
        if self._dirty:
            self._write()
        if self.active or (not self.stopped and len(self.trials) < self.budget):
            return None
        self._write()
        return 0

    def _submit(self) -> None:
        while len(self.active) < self.concurrent and len(self.trials) < self.budget:
            if self._ctx.cancel_requested():
                return
            s = self._sampler.ask()
            trial = {"number": s.number, "params": s.params, "internal": s.internal,
                     "job": None, "status": "Queued", "values": {}}
            self.trials.append(trial)
            self._dirty = True
            try:
                trial["job"] = submit_trial(self._ws, self._ctx.job_id, self._spec, s.number,
                                            s.params)
                self._say(f"trial {s.number}: job {trial['job']} with {s.params}")
            except MlwsError as exc:
                trial.update(status="Failed", reason=f"could not be submitted: {exc}")
                self._say(f"trial {s.number}: could not be submitted: {exc}")
                self._sampler.tell(s.number, "fail")

    def _collect(self) -> None:
        for trial in self.active:
            if trial["job"] is None:
                continue
            job = self._ws.jobs.get(trial["job"])
            for interval, value in primary_series(self._ws, job.id, self._metric):
                if str(interval) in trial["values"]:
                    continue
                trial["values"][str(interval)] = value
                self._dirty = True
                self._sampler.report(trial["number"], interval, value)
            why = None if job.done else self._sampler.check(trial["number"])
            if why and not trial.get("stopping"):
                trial["stopping"] = why
                self._say(f"trial {trial['number']}: stopped early ({why})")
                self._ws.jobs.cancel(job.id)
            if job.done:
                self._ended(trial, job)

    def _ended(self, trial: dict[str, Any], job: Any) -> None:
        values = trial["values"]
        last = values[max(values, key=int)] if values else None
        trial["value"] = last
        why = trial.pop("stopping", None)
        if job.status == JobStatus.CANCELED.value and why:
            trial.update(status=EARLY, reason=why)
            self._ws.store.update_job(job.id, error=f"early termination ({why})")
            self._sampler.tell(trial["number"], "pruned")
        elif job.status == JobStatus.COMPLETED.value and last is not None:
            trial["status"] = "Completed"
            self._sampler.tell(trial["number"], "complete", last)
        else:
            trial["status"] = job.status
            if job.status == JobStatus.COMPLETED.value:
                trial["reason"] = f"it logged no {self._metric!r}"
            elif job.error:
                trial["reason"] = job.error.splitlines()[0][:300]
            self._sampler.tell(trial["number"], "fail")
        self._dirty = True
        self._say(f"trial {trial['number']}: {trial['status']}"
                  + (f" with {self._metric} {last:.6g}" if last is not None else ""))

    def _write(self) -> None:
        data = {"trials": self.trials, "budget": self.budget, "stopped": self.stopped,
                "resumed_from": self._spec.get("resume_from")}
        write_json_atomic(self._ctx.paths.root / STATE_FILE, data, mode=0o644)
        self._dirty = False

    def stop(self, grace: float = 0.0) -> None:
        """Cancel the running trials; no more start."""
        self.stopped = self.stopped or "canceled"
        for trial in self.active:
            if trial["job"]:
                self._ws.jobs.cancel(trial["job"])
        self._next_poll = 0.0

    def close(self) -> None:
        self._write()


def submit_trial(ws: Workspace, sweep_id: str, spec: dict[str, Any], number: int,
                 params: dict[str, Any]) -> str:
    """Submit trial ``number`` with its drawn ``params`` as a child job of the sweep."""
    t = spec["trial_job"]
    common: dict[str, Any] = {
        "environment": t.get("environment"), "outputs": t.get("outputs") or None,
        "timeout": t.get("timeout"), "display_name": f"trial {number}",
        "experiment": spec.get("experiment_name"), "compute": None,
        "environment_variables": t.get("environment_variables") or None,
        "_parent": (sweep_id, f"trial_{number}")}
    common["compute"] = ws.jobs.get(sweep_id).compute
    inputs = dict(t.get("inputs") or {})
    if t["kind"] == "notebook":
        job = ws.jobs.submit_notebook(t["notebook"], {**t.get("parameters", {}), **params},
                                      inputs=inputs or None, code=t.get("code"), **common)
        return job.id
    for name in t.get("swept_inputs") or []:
        inputs[name] = _literal_input(params[name])
    outputs = dict(t.get("outputs") or {})
    if t["kind"] == "component":
        from jupyter_mlws.jobs.pipeline import _component_io

        _component_io(t["component"], inputs, outputs)
        common["outputs"] = outputs or None
    job = ws.jobs.submit_command(t["command"], code=t.get("code"), inputs=inputs, **common)
    return job.id


def _literal_input(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, int):
        return {"type": "integer", "value": value}
    if isinstance(value, float):
        return {"type": "number", "value": value}
    text = value if isinstance(value, str) else json.dumps(value)
    return {"type": "string", "value": text}


class SweepRun(JobTemplate):
    """A sweep job on the job template."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._handle: SweepHandle | None = None

    def prepare(self, ctx: RunContext) -> Runtime:
        spec = ctx.store.get_job(ctx.job_id).spec
        kept = kept_trials(self._ws, spec.get("resume_from"))
        sampler = build_sampler(spec, len(kept))
        carried = carry_trials(kept, spec.get("resume_from"), sampler)
        return Runtime(details={"spec": spec, "sampler": sampler, "carried": carried})

    def start(self, ctx: RunContext, runtime: Runtime) -> SweepHandle:
        d = runtime.details
        self._handle = SweepHandle(self._ws, ctx, d["spec"], d["sampler"], d["carried"])
        return self._handle

    def outcome(self, ctx: RunContext, code: int) -> tuple[JobStatus, str | None]:
        from jupyter_mlws.sweeps.view import build_sweep_view

        handle = self._handle
        if handle is not None and handle.stopped and handle.stopped != "canceled":
            return JobStatus.CANCELED, handle.stopped
        view = build_sweep_view(self._ws, ctx.job_id)
        if view.problem:
            return JobStatus.FAILED, view.problem
        best = view.best
        if best is not None and best.job:
            link_best_outputs(self._ws, ctx.job_id, best.job)
        return JobStatus.COMPLETED, (f"best: trial {best.number} (job {best.job}) with "
                                     f"{view.metric} {best.value:.6g}" if best else None)


def link_best_outputs(ws: Workspace, sweep_id: str, trial_id: str) -> None:
    """The sweep's outputs are its best trial's: a link per output (what a pipeline step
    after a sweep step reads)."""
    import os

    mine = ws.jobs.paths(sweep_id).outputs
    theirs = ws.jobs.paths(trial_id).outputs
    if not theirs.is_dir():
        return
    mine.mkdir(parents=True, exist_ok=True)
    for d in sorted(theirs.iterdir()):
        link = mine / d.name
        if not d.is_symlink() and not link.exists() and not link.is_symlink():
            link.symlink_to(os.path.relpath(d, mine), target_is_directory=d.is_dir())


def kept_trials(ws: Workspace, old_id: str | None) -> list[dict[str, Any]]:
    """The trials of sweep ``old_id`` that ended (a resume keeps them). A trial its runner
    saw running (the runner died, or the sweep was canceled as it ended) counts when its
    job completed with a value of the primary metric."""
    if not old_id:
        return []
    metric = ws.jobs.get(old_id).spec["objective"]["primary_metric"]
    kept = []
    for t in read_state(ws, old_id).get("trials", []):
        if t.get("status") not in FINAL and t.get("job"):
            series = primary_series(ws, t["job"], metric)
            if ws.jobs.get(t["job"]).status == JobStatus.COMPLETED.value and series:
                t = {**t, "status": "Completed", "value": series[-1][1],
                     "values": {str(i): v for i, v in series}}
        if t.get("status") in FINAL:
            kept.append(t)
    return kept


def carry_trials(kept: list[dict[str, Any]], old_id: str | None,
                 sampler: Sampler) -> list[dict[str, Any]]:
    """``kept`` renumbered from 0 and replayed into ``sampler`` (its samplers and pruners
    see them)."""
    out = []
    for n, t in enumerate(kept):
        state = {"Completed": "complete", EARLY: "pruned"}.get(t["status"], "fail")
        sampler.replay(t["internal"], state, t.get("value"),
                       {int(k): v for k, v in (t.get("values") or {}).items()})
        out.append({**t, "number": n, "carried_from": t.get("carried_from") or old_id})
    return out
