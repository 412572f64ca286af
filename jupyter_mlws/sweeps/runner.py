"""The sweep's runner: ``python -m jupyter_mlws.sweeps.runner JOB_DIR``, one detached process
per sweep. Like a job's runner it holds ``runner.lock`` while it lives (a dead one is reaped
like any job) but takes no compute slot: its trials take theirs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jupyter_mlws.errors import LaunchFormatError
from jupyter_mlws.jobs.launch import Launch
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.runner import try_lock


def main(argv: list[str]) -> int:
    paths = JobPaths(Path(argv[0]))
    try:
        launch = Launch.read(paths.launch)
    except LaunchFormatError as exc:
        print(f"[mlws] {exc}", file=sys.stderr, flush=True)
        return 2
    lock = try_lock(paths.runner_lock)
    if lock is None:
        return 0  # another runner has this sweep
    from jupyter_mlws.compute.base import RunContext
    from jupyter_mlws.operations.target_services import WorkspaceTargetServices
    from jupyter_mlws.sweeps.run import SweepRun
    from jupyter_mlws.workspace import Workspace

    ws = Workspace.open(launch.workspace)
    try:
        ws.store.update_job(launch.job_id, runner_pid=os.getpid())
        ctx = RunContext(WorkspaceTargetServices(ws), launch.job_id, launch, paths)
        SweepRun(ws).run(ctx)
        return 0
    finally:
        ws.close()
        lock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
