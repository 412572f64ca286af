"""Acting on jobs once submitted: cancel, rerun, download, and failing orphaned jobs."""

from __future__ import annotations

import builtins
import errno
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from jupyter_mlws.errors import DiskFullError, ValidationError
from jupyter_mlws.jobs import hosts
from jupyter_mlws.jobs.logs import read_log_text
from jupyter_mlws.jobs.model import JobStatus
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.queries import JobQueries
from jupyter_mlws.jobs.runner import is_locked
from jupyter_mlws.jobs.safe_files import copy_job_tree

if TYPE_CHECKING:
    from jupyter_mlws.jobs.model import Job
    from jupyter_mlws.jobs.submit import JobSubmission

#: A runner that has not taken its lock this long after submission never started.
RUNNER_START_GRACE_S = 120.0


class JobLifecycle(JobQueries):
    """Cancel, rerun, download and reap (composed into ``ws.jobs`` with submission)."""

    def cancel(self, job_id: str) -> Job:
        """Stop a job (its process or container and their children); a no-op once it ended."""
        job = self.get(job_id)
        if job.done:
            return job
        if hosts.runs_elsewhere(job.spec, self._ws.path):
            self._store.request_cancel(job.id)  # its runner, on its machine, polls the store
            return self.get(job.id)
        paths = self.paths(job.id)
        paths.cancel_flag.touch()
        self._store.request_cancel(job.id)
        for child in self.children(job.id):
            if not child.done:
                self.cancel(child.id)
        if not is_locked(paths.runner_lock) and job.runner_pid is not None:
            _kill_leftovers(paths)
            self._store.transition_job(job.id, JobStatus.CANCELED,
                                       message="canceled (no runner)")
        return self.get(job.id)

    def rerun(self, job_id: str, **overrides: Any) -> Job:
        """Submit a job again with the same inputs (parameters may be overridden)."""
        submit = cast("JobSubmission", self)
        job = self.get(job_id)
        if job.type == "sweep":  # resume=True keeps the trials that ended
            from jupyter_mlws.sweeps.submit import rerun_sweep

            return rerun_sweep(self._ws, job, resume=bool(overrides.get("resume")),
                               compute=overrides.get("compute"))
        spec = job.spec
        if job.type == "notebook":
            params = {**spec.get("parameters", {}), **overrides.pop("parameters", {})}
            snap = self.paths(job.id).notebook_in
            return submit.submit_notebook(
                spec["notebook"] if Path(spec["notebook"]).exists() else snap, params,
                environment=overrides.get("environment", job.environment),
                compute=overrides.get("compute", job.compute), inputs=spec.get("inputs"),
                outputs={k: {"type": v} for k, v in (spec.get("outputs") or {}).items()},
                code=spec.get("code") if Path(spec.get("code") or "").exists() else None,
                experiment=job.experiment, timeout=spec.get("timeout"))
        if job.type == "command":
            return submit.submit_command(
                spec["command"], code=spec.get("code"),
                environment=overrides.get("environment", job.environment),
                compute=overrides.get("compute", job.compute), inputs=spec.get("inputs"),
                outputs={k: {"type": v} for k, v in (spec.get("outputs") or {}).items()},
                display_name=job.display_name, experiment=job.experiment,
                timeout=spec.get("timeout"))
        return submit.submit_pipeline({k: v for k, v in spec.items() if k != "base_dir"},
                                      base_dir=Path(spec.get("base_dir", ".")),
                                      compute=overrides.get("compute"))

    def download(self, job_id: str, dest: str | Path, *, what: str = "all") -> Path:
        """Copy a job's outputs, logs and output notebook into ``dest/<job id>``."""
        job = self.get(job_id)
        paths = self.paths(job.id)
        target = Path(dest) / job.id
        pieces = {"outputs": paths.outputs, "logs": paths.logs,
                  "notebook": paths.notebook_out.parent}
        try:
            target.mkdir(parents=True, exist_ok=True)
            for name, src in pieces.items():
                if what not in ("all", name) or not src.exists():
                    continue
                copy_job_tree(src, target / name, paths.root)  # real files only: no links
            if what in ("all", "mlflow"):
                from jupyter_mlws.jobs.mlflow_store import copy_mlflow_artifacts

                copy_mlflow_artifacts(paths, target)
        except OSError as exc:  # the destination is a file, read-only, full...
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(str(dest), what=f"the download of job {job.id}") from None
            raise ValidationError(
                f"Job {job.id}'s files cannot be copied into {str(target)!r}: "
                f"{exc.strerror or exc}.",
                hint="Give a destination folder you can write (not a file).") from None
        return target

    def reap_orphans(self) -> builtins.list[str]:
        """Mark Failed the active jobs whose runner is gone (a crash, a reboot, a kill), and
        remove what a killed job agent left (its socket and identity)."""
        from jupyter_mlws.agent.client import reap_agent

        reap_agent(self._ws.path)
        reaped = []
        for job in self._store.iter_active_jobs():
            if hosts.runs_elsewhere(job.spec, self._ws.path):
                gone = hosts.expired(self._store, job.spec, job.created_at.timestamp())
                if gone and self._store.transition_job(job.id, JobStatus.FAILED, message=gone,
                                                       error=gone):
                    reaped.append(job.id)
                continue  # else only its own machine can tell whether its runner lives
            paths = self.paths(job.id)
            if is_locked(paths.runner_lock):
                continue
            age = time.time() - job.created_at.timestamp()
            if job.runner_pid is None and age < RUNNER_START_GRACE_S:
                continue  # its runner is still starting (or queued before taking its lock)
            _kill_leftovers(paths)
            reason = (f"the job's runner (pid {job.runner_pid}) stopped while the job was "
                      f"{job.status} (machine restart, or the process was killed)")
            runner_log = paths.logs / "runner.log"
            if runner_log.exists() and runner_log.stat().st_size:
                last = read_log_text([runner_log], paths.root).strip().splitlines()[-1:]
                reason += f"; its last words: {last[0]}" if last else ""
            if self._store.transition_job(job.id, JobStatus.FAILED, message=reason,
                                          error=reason):
                reaped.append(job.id)
        return reaped


def _kill_leftovers(paths: JobPaths) -> None:
    """Stop a job's process (checked to still be the job's) or container that outlived its
    runner."""
    from jupyter_mlws.compute.docker import stop_job_containers
    from jupyter_mlws.jobs.process_identity import kill_recorded_group

    kill_recorded_group(paths.child_pid)
    stop_job_containers(paths.root.name, paths.job_log)
