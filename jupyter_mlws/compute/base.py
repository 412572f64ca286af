"""The compute target contract. The base class owns the job's life (states, persistence,
cancel, timeout, metrics, outputs); a target implements only :meth:`prepare` and :meth:`start`.
"""

from __future__ import annotations

import abc
import json
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jupyter_mlws.errors import MlwsError, UnsafePathError
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.safe_files import open_job_file, read_job_json

if TYPE_CHECKING:
    from jupyter_mlws.assets.compute import Compute
    from jupyter_mlws.workspace import Workspace

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
    workspace: Workspace
    job_id: str
    launch: dict[str, Any]
    paths: JobPaths
    _metrics_offset: int = 0
    _params_offset: int = 0

    @property
    def store(self) -> Any:
        return self.workspace.store

    def prepare_log(self, line: str) -> None:
        with open(self.paths.prepare_log, "a", encoding="utf-8") as f:
            f.write(line.rstrip("\n") + "\n")

    def cancel_requested(self) -> bool:
        if self.paths.cancel_flag.exists():
            return True
        return bool(self.store.get_job(self.job_id).cancel_requested)

    def ingest(self) -> None:
        """Move new metric and parameter lines from the run folder into the store."""
        metrics, self._metrics_offset = _read_new_lines(
            self.paths.run / "metrics.jsonl", self._metrics_offset)
        if metrics:
            from datetime import datetime, timezone

            self.store.add_metrics(self.job_id, [
                {"key": m["key"], "value": m["value"], "step": m.get("step"),
                 "at": datetime.fromtimestamp(m.get("t", time.time()), timezone.utc)}
                for m in metrics if "key" in m and "value" in m])
        params, self._params_offset = _read_new_lines(
            self.paths.run / "params.jsonl", self._params_offset)
        if params:
            self.store.set_job_params(self.job_id, {p["key"]: p.get("value") for p in params
                                                    if "key" in p})


def _read_new_lines(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines appended since ``offset``; a half-written last line waits."""
    try:
        with open_job_file(path) as f:  # the job wrote it: no links, no FIFOs
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


class ComputeTarget(abc.ABC):
    """Runs jobs on one compute definition."""

    kind: str = ""

    def __init__(self, workspace: Workspace, compute: Compute) -> None:
        self.workspace = workspace
        self.compute = compute

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.compute.spec)

    # --- what a target implements ----------------------------------------------------------

    def plan(self, launch: dict[str, Any]) -> Runtime | None:
        """At submission: the runtime when it is ready already (a cache hit), else ``None``.

        Must be fast (milliseconds); the default prepares nothing ahead.
        """
        return None

    @abc.abstractmethod
    def prepare(self, ctx: RunContext) -> Runtime:
        """Materialize the environment (may build); write progress with ``ctx.prepare_log``."""

    @abc.abstractmethod
    def start(self, ctx: RunContext, runtime: Runtime) -> Handle:
        """Start the job's command; its output goes to ``ctx.paths.job_log``."""

    # --- the job's life (template method) ------------------------------------------------------

    def run(self, ctx: RunContext, *, prestarted: Handle | None = None,
            runtime: Runtime | None = None) -> str:
        """Take the job from Queued to a final state; return that state."""
        store = ctx.store
        handle: Handle | None = prestarted
        try:
            if handle is None:
                store.transition_job(ctx.job_id, "Preparing", only_from=["Queued"])
                if ctx.cancel_requested():
                    return self._finish(ctx, "Canceled", "canceled before it started")
                runtime = self.prepare(ctx)
                store.update_job(ctx.job_id, image=runtime.image or runtime.python,
                                 env_hash=runtime.env_hash)
                if ctx.cancel_requested():
                    return self._finish(ctx, "Canceled", "canceled while preparing")
                handle = self.start(ctx, runtime)
            else:
                store.transition_job(ctx.job_id, "Preparing", only_from=["Queued"],
                                     message="environment ready (cached)")
                if runtime is not None:
                    store.update_job(ctx.job_id, image=runtime.image or runtime.python,
                                     env_hash=runtime.env_hash)
            from datetime import datetime, timezone

            started = datetime.fromtimestamp(handle.started_at, timezone.utc)
            store.transition_job(ctx.job_id, "Running", only_from=["Preparing"],
                                 started_at=started)
            return self._watch(ctx, handle)
        except MlwsError as exc:
            if handle is not None:
                handle.stop()
            return self._finish(ctx, "Failed", str(exc))
        except Exception as exc:
            if handle is not None:
                handle.stop()
            with open(ctx.paths.job_log, "a", encoding="utf-8") as f:
                f.write("\n[mlws] internal error:\n" + traceback.format_exc())
            return self._finish(ctx, "Failed", f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if handle is not None:
                handle.close()

    def _watch(self, ctx: RunContext, handle: Handle) -> str:
        timeout = ctx.launch.get("timeout")
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
            return self._finish(ctx, "Canceled", "canceled by request")
        if timed_out:
            return self._finish(ctx, "Failed", f"timed out after {timeout} s (the job's timeout)")
        status, message = self.outcome(ctx, code)
        return self._finish(ctx, status, message)

    def outcome(self, ctx: RunContext, code: int) -> tuple[str, str | None]:
        """The final state from the exit code (and, for notebooks, the runner's report)."""
        report = read_job_json(ctx.paths.result, ctx.paths.root)
        if ctx.launch.get("kind") == "notebook" and report:
            if report.get("status") == "completed":
                return "Completed", report.get("message")
            return "Failed", report.get("message") or "the notebook failed"
        if code == 0:
            return "Completed", None
        if code < 0:
            return "Failed", (f"the job was killed by {signal_name(code)}"
                              + (" (out of memory?)" if code == -signal.SIGKILL else ""))
        if code == 137:
            return "Failed", "the job was killed (exit 137: out of memory or SIGKILL)"
        return "Failed", f"the command exited with code {code}; see `mlws job logs {ctx.job_id}`"

    def _finish(self, ctx: RunContext, status: str, message: str | None) -> str:
        try:
            ctx.ingest()
        except Exception as exc:  # metrics must not hide the job's outcome
            message = f"{message or ''} (metrics could not be read: {exc})".strip()
        outputs = []
        if ctx.paths.outputs.exists():
            for d in sorted(ctx.paths.outputs.iterdir()):
                if d.is_dir() and not d.is_symlink():
                    outputs.append({"name": d.name,
                                    "type": ctx.launch.get("outputs", {}).get(d.name, "uri_folder"),
                                    "uri": f"mlws://jobs/{ctx.job_id}/outputs/{d.name}"})
        ctx.store.set_job_io(ctx.job_id, "output", outputs)
        result = read_job_json(ctx.paths.result, ctx.paths.root)
        fields: dict[str, Any] = {"result": result or None}
        if status != "Completed":
            fields["error"] = message
        ctx.store.transition_job(ctx.job_id, status, message=message, **fields)
        return status

