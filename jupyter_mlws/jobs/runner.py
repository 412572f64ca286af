"""The runner: one detached process per job, ``python -m jupyter_mlws.jobs.runner JOB_DIR``.

It outlives whoever submitted the job. It holds ``runner.lock`` for as long as it lives, so a
workspace that finds the lock free knows the runner died and marks the job Failed. It waits for
a slot of its compute (``max_concurrent_jobs`` file locks that the OS frees if it dies), then
hands the job to its compute target.

When the submitter found the environment ready, the job's process is started *before* the
workspace is opened (which costs a few hundred milliseconds of imports), so the kernel starts
while the runner loads. A runner that ends its job offers itself for a moment, and runs in its
loaded process the next job of its compute that comes (:mod:`jupyter_mlws.jobs.relay`), handed
over by that job's runner with its locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from jupyter_mlws.errors import LaunchFormatError, MlwsError
from jupyter_mlws.jobs.paths import LAUNCH_VERSION, JobPaths

if TYPE_CHECKING:
    from jupyter_mlws.jobs.launch import Launch

#: ``0`` turns the runner relay off (see :mod:`jupyter_mlws.jobs.relay`).
RELAY_VAR = "MLWS_RUNNER_RELAY"


def try_lock(path: Path) -> TextIO | None:
    """An exclusive lock on ``path`` held by the returned open file, or ``None`` if taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")  # noqa: SIM115 - the open file *is* the lock
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def is_locked(path: Path) -> bool:
    """Whether some live process holds the lock on ``path``."""
    if not path.exists():
        return False
    held = try_lock(path)
    if held is None:
        return True
    held.close()
    return False


class Queued(NamedTuple):
    """What waiting for a slot needs from ``launch.json``."""

    job_id: str
    kind: str
    compute: str
    slot_dir: str
    max_concurrent: int


def queued_fields(path: Path) -> Queued | None:
    """:class:`Queued` read with the standard library, so a runner waiting for its slot (up to
    one per queued job) has not loaded pydantic; ``None`` when the file does not read so
    (:meth:`Launch.read` then says why)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version", LAUNCH_VERSION) != LAUNCH_VERSION:
            return None
        return Queued(str(data["job_id"]), str(data["kind"]), str(data["compute"]),
                      str(data["slot_dir"]), int(data.get("max_concurrent", 1)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def wait_for_slot(queued: Queued, paths: JobPaths) -> TextIO | None:
    """Take one of the compute's slots in submission order (see :mod:`jupyter_mlws.jobs.queue`);
    ``None`` if the job was canceled while waiting."""
    from jupyter_mlws.jobs import queue

    slot_dir = Path(queued.slot_dir)
    ticket, held = queue.adopt_ticket(os.environ, slot_dir, queued.job_id)
    canceled = paths.cancel_flag.exists
    try:
        if not queue.wait_turn(ticket, canceled):
            return None
        slot = queue.take_slot(slot_dir, max(1, queued.max_concurrent), canceled)
        if slot is not None:
            print(f"[mlws] took a slot of {queued.compute} at {time.time_ns()}", flush=True)
        return slot
    finally:
        queue.leave(ticket, held)


def _read_launch(paths: JobPaths) -> Launch | None:
    """The job's launch; ``None`` after saying why it does not read (in runner.log, which the
    reaper quotes when it fails the job)."""
    from jupyter_mlws.jobs.launch import Launch

    try:
        return Launch.read(paths.launch)
    except LaunchFormatError as exc:
        print(f"[mlws] {exc}", file=sys.stderr, flush=True)
        return None


def _warm_start(launch: Launch, python: str, paths: JobPaths) -> Any:
    """The job on a warm kernel of the workspace's job agent, or ``None`` (it starts cold)."""
    try:
        from jupyter_mlws.agent.client import warm_start

        return warm_start(launch, python, paths)
    except Exception as exc:  # the agent accelerates; it never fails a job
        print(f"[mlws] the job agent could not be used ({type(exc).__name__}: {exc})",
              flush=True)
        return None


def main(argv: list[str]) -> int:
    paths = JobPaths(Path(argv[0]))
    queued = queued_fields(paths.launch)
    launch = None
    if queued is None:  # (pydantic says why, or reads what the standard library did not)
        launch = _read_launch(paths)
        if launch is None:
            return 2
        queued = Queued(launch.job_id, launch.kind, launch.compute, launch.slot_dir,
                        launch.max_concurrent)
    runner_lock = try_lock(paths.runner_lock)
    if runner_lock is None:
        return 0  # another runner has this job
    slot = None
    if queued.kind != "pipeline":
        slot = wait_for_slot(queued, paths)  # before pydantic is imported: see queued_fields
    if slot is not None and os.environ.get(RELAY_VAR) != "0":
        from jupyter_mlws.jobs import relay

        to = relay.hand_over(Path(queued.slot_dir), paths.root, runner_lock, slot)
        if to is not None:
            print(f"[mlws] handed to the loaded runner {to}", flush=True)
            return 0
    return _serve(paths, launch, runner_lock, slot, Path(queued.slot_dir))


def _serve(paths: JobPaths, launch: Launch | None, runner_lock: TextIO, slot: TextIO | None,
           slot_dir: Path) -> int:
    """Run the job, then (see :mod:`jupyter_mlws.jobs.relay`) the jobs queued after it that
    their runners hand over, while they come."""
    code, served = 0, 0
    while True:
        offer = None
        try:
            code = _run(paths, launch, slot)
            served += 1
            if slot is not None and os.environ.get(RELAY_VAR) != "0":
                offer = _offer(slot_dir, served)  # before the slot is given back
        finally:
            if slot is not None:
                slot.close()
            runner_lock.close()
        handed = offer.wait() if offer is not None else None
        if handed is None:
            return code
        from jupyter_mlws.jobs import relay

        relay.take_log(handed.log_fd)
        print(f"[mlws] runner {os.getpid()} runs this job (handed over; "
              f"job {served + 1} of this runner)", flush=True)
        paths, launch = JobPaths(handed.job_dir), None
        runner_lock, slot = handed.runner_lock, handed.slot


def _offer(slot_dir: Path, served: int) -> Any:
    from jupyter_mlws.jobs import relay

    if served >= relay.MAX_JOBS:
        return None
    try:
        return relay.Offer(slot_dir, served)
    except OSError as exc:
        print(f"[mlws] no relay: {exc}", flush=True)
        return None


def _run(paths: JobPaths, launch: Launch | None, slot: TextIO | None) -> int:
    """Run the job in ``paths`` (holding ``slot``, or canceled while queued when ``None``)."""
    if launch is None:
        launch = _read_launch(paths)
        if launch is None:
            return 2
    from jupyter_mlws.jobs.model import JobStatus

    job_id = launch.job_id
    prestarted = None
    runtime = None
    if (launch.kind != "pipeline" and slot is not None and launch.ready
            and launch.compute_kind == "local" and launch.python):
        from jupyter_mlws.compute.base import Runtime
        from jupyter_mlws.compute.local import start_job

        python = launch.python
        try:
            prestarted = _warm_start(launch, python, paths) or start_job(launch, python, paths)
            runtime = Runtime(python=python, env_hash=launch.env_hash)
        except MlwsError:
            pass  # the target starts it again and reports the failure in the job

    from jupyter_mlws.compute.base import RunContext
    from jupyter_mlws.operations.target_services import WorkspaceTargetServices
    from jupyter_mlws.workspace import Workspace

    ws = Workspace.open(launch.workspace)
    beating = _heartbeat(ws)
    from jupyter_mlws.jobs import log_parts

    live_log = log_parts.start(ws, paths, job_id)  # a remote artifact store: for other machines
    try:
        ws.store.update_job(job_id, runner_pid=os.getpid())
        ctx = RunContext(WorkspaceTargetServices(ws), job_id, launch, paths,
                         on_running=live_log.job_running if live_log is not None else None)
        if launch.kind == "pipeline":  # its log tells its steps' progress: published at once
            if live_log is not None:
                live_log.job_running()
            from jupyter_mlws.jobs.pipeline import PipelineRun

            PipelineRun(ws).run(ctx)
            return 0
        if slot is None:
            ws.store.transition_job(job_id, JobStatus.CANCELED, message="canceled while queued")
            return 0
        from jupyter_mlws.compute import target_for

        target = target_for(ctx.services, ws.computes.get(launch.compute))
        target.run(ctx, prestarted=prestarted, runtime=runtime)
        return 0
    finally:
        log_parts.finish(live_log, paths)
        _publish_files(ws, job_id)
        if beating is not None:
            beating.set()
        ws.close()


def _heartbeat(ws: Any) -> Any:
    """A team workspace (not SQLite, or a remote artifact store): this machine's runners beat in
    the store so that other machines can tell when it is gone."""
    if getattr(ws.store, "is_sqlite", True) and ws.artifacts.remote is None:
        return None
    from jupyter_mlws.jobs.hosts import start_heartbeat

    return start_heartbeat(ws.store, ws.path)


def _publish_files(ws: Any, job_id: str) -> None:
    """With a remote artifact store: the job's files for the team's other machines."""
    from jupyter_mlws.jobs.safe_files import open_log_for_append
    from jupyter_mlws.jobs.team_files import publish

    try:
        publish(ws, job_id)
    except Exception as exc:  # noqa: BLE001 - the job's outcome stands; say why in its log
        log = JobPaths.of(ws.artifacts.root, job_id).logs / "runner.log"
        with contextlib.suppress(OSError), open_log_for_append(log) as f:
            f.write(f"the job's files could not be published: {exc}\n".encode())


if __name__ == "__main__":
    code = main(sys.argv[1:])
    import gc

    gc.freeze()  # (exit without collecting every object first: tenths of a second; atexit runs)
    sys.exit(code)
