"""The job's life as a template method, and the compute target contract.

:class:`JobTemplate` owns the job's states (Queued -> Preparing -> Running -> a final state),
persistence, cancel, timeout, metrics and outputs; a subclass implements only :meth:`prepare`
and :meth:`start` (and may refine :meth:`outcome`). :class:`ComputeTarget` is the template for
jobs that run on a compute definition; it sees the workspace only through
:class:`~jupyter_mlws.compute.services.TargetServices`.
"""

from __future__ import annotations

import abc
import contextlib
import json
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_mlws.errors import MlwsError, UnsafePathError
from jupyter_mlws.jobs.mlflow_store import MlflowIngest
from jupyter_mlws.jobs.model import JobStatus
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.safe_files import open_job_file, open_log_for_append, read_job_json

if TYPE_CHECKING:
    from jupyter_mlws.assets.compute import Compute
    from jupyter_mlws.compute.services import JobRecords, TargetServices
    from jupyter_mlws.jobs.launch import Launch

POLL_S = 0.05
CANCEL_CHECK_S = 0.25
INGEST_S = 0.5
STOP_GRACE_S = 5.0


class Handle(Protocol):
    """A started job process (a subprocess, a container, a cluster job)."""

    started_at: float

    def poll(self) -> int | None:
        """The exit code once it has ended, else ``None``."""

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop it and everything it started."""

    def close(self) -> None:
        """Release what watching it took (threads, containers)."""


@dataclass
class Runtime:
    """What :meth:`ComputeTarget.prepare` resolved: where and with what the job runs."""

    python: str | None = None
    image: str | None = None
    env_hash: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    """One run of one job: what was launched, where its files are, and the job store."""

    services: TargetServices
    job_id: str
    launch: Launch
    paths: JobPaths
    #: Called once the job is recorded Running (the runner then publishes its live log).
    on_running: Callable[[], None] | None = None
    _metrics_offset: int = 0
    _params_offset: int = 0
    _mlflow: MlflowIngest | None = None

    @property
    def store(self) -> JobRecords:
        return self.services.jobs

    def prepare_log(self, line: str) -> None:
        """Append a line to the prepare log; skipped when a link (or anything odd) is there."""
        with contextlib.suppress(OSError), open_log_for_append(self.paths.prepare_log) as f:
            f.write((line.rstrip("\n") + "\n").encode("utf-8"))

    def cancel_requested(self) -> bool:
        if self.paths.cancel_flag.exists():
            return True
        return bool(self.store.get_job(self.job_id).cancel_requested)

    def ingest(self) -> None:
        """Move new metric and parameter lines from the run folder into the store."""
        metrics, self._metrics_offset = _read_new_lines(
            self.paths.run / "metrics.jsonl", self._metrics_offset, self.paths.root)
        if metrics:
            from datetime import datetime, timezone

            self.store.add_metrics(self.job_id, [
                {"key": m["key"], "value": m["value"], "step": m.get("step"),
                 "at": datetime.fromtimestamp(m.get("t", time.time()), timezone.utc)}
                for m in metrics if "key" in m and "value" in m])
        params, self._params_offset = _read_new_lines(
            self.paths.run / "params.jsonl", self._params_offset, self.paths.root)
        if params:
            self.store.set_job_params(self.job_id, {p["key"]: p.get("value") for p in params
                                                    if "key" in p})
        self._ingest_mlflow()

    def _ingest_mlflow(self) -> None:
        """The same from the MLflow store in the run folder (see ``jobs.mlflow_store``)."""
        if self._mlflow is None:
            self._mlflow = MlflowIngest(self.paths)
        mlflow_metrics, mlflow_params = self._mlflow.read()
        if mlflow_metrics:
            self.store.add_metrics(self.job_id, mlflow_metrics)
        if mlflow_params:
            self.store.set_job_params(self.job_id, mlflow_params)


def _read_new_lines(path: Path, offset: int, root: Path) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines appended since ``offset``; a half-written last line waits. The job
    under ``root`` wrote them: no link (at any part below ``root``) or FIFO is followed."""
    try:
        with open_job_file(path, root) as f:
            f.seek(offset)
            data = f.read()
    except (FileNotFoundError, UnsafePathError):
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    out = []
    for raw in data[: end + 1].splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue  # a line the job wrote by hand; metrics stay valid
    return out, offset + end + 1


def signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


class JobTemplate(abc.ABC):
    """The job's life; subclasses say how to prepare and start it."""

    # --- what a subclass implements ----------------------------------------------------------

    @abc.abstractmethod
    def prepare(self, ctx: RunContext) -> Runtime:
        """Materialize the environment (may build); write progress with ``ctx.prepare_log``."""

    @abc.abstractmethod
    def start(self, ctx: RunContext, runtime: Runtime) -> Handle:
        """Start the job's command; its output goes to ``ctx.paths.job_log``."""

    # --- the job's life (template method) ------------------------------------------------------

    def run(self, ctx: RunContext, *, prestarted: Handle | None = None,
            runtime: Runtime | None = None) -> JobStatus:
        """Take the job from Queued to a final state; return that state.

        The handle is closed (its process, container or follower released) before the final
        state is recorded, so a job seen as ended has nothing left running.
        """
        store = ctx.store
        handle: Handle | None = prestarted
        outcome: tuple[JobStatus, str | None]
        try:
            if handle is None:
                store.transition_job(ctx.job_id, JobStatus.PREPARING,
                                     only_from=[JobStatus.QUEUED])
                if ctx.cancel_requested():
                    return self._finish(ctx, JobStatus.CANCELED, "canceled before it started")
                runtime = self.prepare(ctx)
                self._record_runtime(ctx, runtime)
                if ctx.cancel_requested():
                    return self._finish(ctx, JobStatus.CANCELED, "canceled while preparing")
                handle = self.start(ctx, runtime)
            else:
                store.transition_job(ctx.job_id, JobStatus.PREPARING,
                                     only_from=[JobStatus.QUEUED],
                                     message="environment ready (cached)")
                if runtime is not None:
                    self._record_runtime(ctx, runtime)
            from datetime import datetime, timezone

            started = datetime.fromtimestamp(handle.started_at, timezone.utc)
            store.transition_job(ctx.job_id, JobStatus.RUNNING, only_from=[JobStatus.PREPARING],
                                 started_at=started)
            self.running_recorded(handle)
            if ctx.on_running is not None:
                ctx.on_running()
            outcome = self._watch(ctx, handle)
        except MlwsError as exc:
            if handle is not None:
                handle.stop()
            outcome = (JobStatus.FAILED, str(exc))
        except Exception as exc:
            if handle is not None:
                handle.stop()
            with contextlib.suppress(OSError), open_log_for_append(ctx.paths.job_log) as f:
                f.write(("\n[mlws] internal error:\n" + traceback.format_exc()).encode())
            outcome = (JobStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if handle is not None:
                handle.close()
        return self._finish(ctx, *outcome)

    @staticmethod
    def _record_runtime(ctx: RunContext, runtime: Runtime) -> None:
        if runtime.image or runtime.python or runtime.env_hash:
            ctx.store.update_job(ctx.job_id, image=runtime.image or runtime.python,
                                 env_hash=runtime.env_hash)

    def _watch(self, ctx: RunContext, handle: Handle) -> tuple[JobStatus, str | None]:
        """Follow the started job to its end: cancel, timeout, metrics; its outcome."""
        timeout = ctx.launch.timeout
        t0 = time.monotonic()
        last_cancel = last_ingest = t0
        canceled = timed_out = False
        while (code := handle.poll()) is None:
            now = time.monotonic()
            if now - last_cancel >= CANCEL_CHECK_S:
                last_cancel = now
                if ctx.cancel_requested():
                    canceled = True
                    handle.stop()
                    continue
            if timeout and now - t0 > float(timeout):
                timed_out = True
                handle.stop()
                continue
            if now - last_ingest >= INGEST_S:
                last_ingest = now
                ctx.ingest()
            time.sleep(POLL_S)
        if canceled:
            return JobStatus.CANCELED, "canceled by request"
        if timed_out:
            return JobStatus.FAILED, f"timed out after {timeout} s (the job's timeout)"
        return self.outcome(ctx, code)

    def running_recorded(self, handle: Handle) -> None:  # noqa: B027 - a hook, most have nothing to do
        """The job store now says Running (a target that copies the job's output into its log
        holds it until then, so no line is read while the job still looks Preparing)."""

    def outcome(self, ctx: RunContext, code: int) -> tuple[JobStatus, str | None]:
        """The final state from the exit code (and, for notebooks, the runner's report)."""
        report = read_job_json(ctx.paths.result, ctx.paths.root)
        if ctx.launch.kind == "notebook" and report:
            if report.get("status") == "completed":
                return JobStatus.COMPLETED, report.get("message")
            return JobStatus.FAILED, report.get("message") or "the notebook failed"
        if code == 0:
            return JobStatus.COMPLETED, None
        if code < 0:
            return JobStatus.FAILED, (f"the job was killed by {signal_name(code)}"
                                      + (" (out of memory?)" if code == -signal.SIGKILL else ""))
        if code == 137:
            return JobStatus.FAILED, "the job was killed (exit 137: out of memory or SIGKILL)"
        return JobStatus.FAILED, (f"the command exited with code {code}; see "
                                  f"`mlws job logs {ctx.job_id}`")

    def _finish(self, ctx: RunContext, status: JobStatus, message: str | None) -> JobStatus:
        try:
            ctx.ingest()
        except Exception as exc:  # metrics must not hide the job's outcome
            message = f"{message or ''} (metrics could not be read: {exc})".strip()
        outputs = []
        if ctx.paths.outputs.exists():
            for d in sorted(ctx.paths.outputs.iterdir()):
                # no links; uri_file outputs are files
                if not d.is_symlink() and (d.is_dir() or d.name in ctx.launch.outputs):
                    outputs.append({"name": d.name,
                                    "type": ctx.launch.outputs.get(d.name, "uri_folder"),
                                    "uri": f"mlws://jobs/{ctx.job_id}/outputs/{d.name}"})
        if status == JobStatus.COMPLETED:  # outputs that name a datastore path go there
            from jupyter_mlws.jobs.datastore_outputs import deliver_datastore_outputs

            delivered, failed = deliver_datastore_outputs(ctx.paths)
            for item in outputs:
                item["uri"] = delivered.get(item["name"], item["uri"])
            if failed:
                status, message = JobStatus.FAILED, "; ".join(failed)
        ctx.store.set_job_io(ctx.job_id, "output", outputs)
        result = read_job_json(ctx.paths.result, ctx.paths.root)
        fields: dict[str, Any] = {"result": result or None}
        if status != JobStatus.COMPLETED:
            fields["error"] = message
        ctx.store.transition_job(ctx.job_id, status, message=message, **fields)
        return status


class ComputeTarget(JobTemplate):
    """Runs jobs on one compute definition, using only ``services`` of the workspace."""

    kind: str = ""

    def __init__(self, services: TargetServices, compute: Compute) -> None:
        self.services = services
        self.compute = compute

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.compute.spec)

    def plan(self, launch: Launch) -> Runtime | None:
        """At submission: the runtime when it is ready already (a cache hit), else ``None``.

        Must be fast (milliseconds); the default prepares nothing ahead.
        """
        return None
