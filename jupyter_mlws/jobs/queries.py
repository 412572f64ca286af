"""Reading jobs: records, lineage, metrics, logs, following and waiting."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.errors import ConflictError, NotFoundError, ValidationError
from jupyter_mlws.jobs.logs import log_size, read_log_tail, read_log_text
from jupyter_mlws.jobs.model import Job, JobEvent, JobIO, Metric
from jupyter_mlws.jobs.paths import JobPaths

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace


def parse_job_uri(uri: str) -> tuple[str, str] | None:
    """``mlws://jobs/<id>/outputs/<name>`` -> (job id, name); ``None`` for other URIs."""
    for prefix in ("mlws://jobs/", "azureml://jobs/"):
        if uri.startswith(prefix):
            parts = uri[len(prefix):].strip("/").split("/")
            if len(parts) >= 3 and parts[1] == "outputs" and ".." not in parts:
                return parts[0], "/".join(parts[2:])
            raise ValidationError(f"{uri!r} is not a job output URI.",
                                  hint="Use mlws://jobs/<id>/outputs/<name>.")
    return None


class JobQueries:
    """The reading half of ``ws.jobs`` (the base the other parts build on)."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._store = workspace.store

    # --- paths ---------------------------------------------------------------------------------

    def paths(self, job_id: str) -> JobPaths:
        """Where the job's files are."""
        if not job_id or "/" in job_id or ".." in job_id:
            raise ValidationError(f"{job_id!r} is not a job id.")
        return JobPaths.of(self._ws.artifacts.root, job_id)

    def output_path(self, uri: str) -> tuple[str, Path]:
        """``mlws://jobs/<id>/outputs/<name>`` -> (job id, the folder on disk)."""
        parsed = parse_job_uri(uri)
        if parsed is None:
            raise ValidationError(f"{uri!r} is not a job output URI.")
        job_id, name = parsed
        job = self.get(job_id)
        path = self.paths(job.id).outputs / name
        if not path.exists() and not path.is_symlink():
            known = [io.name for io in self.io(job.id) if io.direction == "output"]
            raise NotFoundError(
                f"Job {job_id} has no output {name!r}"
                + (" (it has not finished)" if not job.done else "") + ".",
                hint=f"Its outputs: {', '.join(known) or 'none'}.",
            )
        if not job.done:  # a running job could swap a file for a link while it is read
            raise ConflictError(f"Job {job.id} is still {job.status}: its outputs can be used "
                                "once it has ended.",
                                hint=f"Follow it to its end with `mlws job stream {job.id}`.")
        from jupyter_mlws.jobs.safe_files import check_job_path

        return job.id, check_job_path(path, self.paths(job.id).root)

    # --- records -------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """One job (NotFoundError when there is none)."""
        return self._store.get_job(job_id)

    def list(self, *, status: str | builtins.list[str] | None = None,
             experiment: str | None = None, parent_id: str | None = None,
             include_children: bool = False, limit: int | None = 100,
             offset: int = 0, created_by: str | None = None) -> builtins.list[Job]:
        """Jobs, newest first; pipeline steps only with ``include_children`` or ``parent_id``;
        ``created_by``: a user's (``ME``: yours; see :mod:`jupyter_mlws.team.identity`)."""
        from jupyter_mlws.team.identity import resolve

        statuses = [status] if isinstance(status, str) else status
        return self._store.list_jobs(
            status=statuses, experiment=experiment, parent_id=parent_id,
            top_level=not include_children, limit=limit, offset=offset,
            created_by=resolve(created_by))

    def count(self, *, status: str | builtins.list[str] | None = None,
              experiment: str | None = None, parent_id: str | None = None,
              created_by: str | None = None) -> int:
        """How many jobs :meth:`list` pages through with the same filters."""
        from jupyter_mlws.team.identity import resolve

        statuses = [status] if isinstance(status, str) else status
        return self._store.count_jobs(status=statuses, experiment=experiment,
                                      parent_id=parent_id, top_level=parent_id is None,
                                      created_by=resolve(created_by))

    def children(self, job_id: str) -> builtins.list[Job]:
        """The steps of a pipeline job."""
        return self.list(parent_id=job_id, limit=None)

    def events(self, job_id: str) -> builtins.list[JobEvent]:
        """The job's state changes, oldest first."""
        return self._store.job_events(job_id)

    def metrics(self, job_id: str) -> builtins.list[Metric]:
        """Metric points the job logged."""
        return self._store.job_metrics(job_id)

    def params(self, job_id: str) -> dict[str, Any]:
        """Parameters the job was given or logged."""
        return self._store.job_params(job_id)

    def io(self, job_id: str) -> builtins.list[JobIO]:
        """The job's inputs and outputs (lineage)."""
        return self._store.job_io(job_id)

    def produced(self, job_id: str) -> builtins.list[str]:
        """Assets registered from this job's outputs (``kind:name:version``)."""
        return [f"{a.kind}:{a.ref}" for a in self._store.find_by_job(job_id)]

    def progress(self, job_id: str) -> dict[str, int] | None:
        """For a notebook job: cells executed so far out of all code cells."""
        from jupyter_mlws.jobs.notebooks import notebook_progress

        paths = self.paths(job_id)
        return notebook_progress(paths.notebook_out, paths.notebook_in, paths.root)

    # --- logs ----------------------------------------------------------------------------------

    def logs(self, job_id: str, *, tail: int | None = None) -> str:
        """The preparation log then what the job printed."""
        paths = self.paths(self.get(job_id).id)
        if tail is not None:  # read back from the end, not the whole log
            return read_log_tail([paths.prepare_log, paths.job_log], paths.root, tail)
        return read_log_text([paths.prepare_log, paths.job_log], paths.root)

    def read_log(self, job_id: str, offset: int = 0, *, max_bytes: int | None = None
                 ) -> dict[str, Any]:
        """The log from byte ``offset``: ``{text, offset, done}``; pass ``offset`` back to follow.

        ``done`` is true once the job has ended and everything has been read. A character is
        never cut in two between reads.
        """
        from jupyter_mlws.jobs.logs import LOG_CHUNK_BYTES, decode_complete, read_log_chunk

        job = self.get(job_id)  # the status first: once ended, what is read is complete
        paths = self.paths(job.id)
        data, end, total = read_log_chunk([paths.prepare_log, paths.job_log], max(0, offset),
                                          max_bytes or LOG_CHUNK_BYTES, root=paths.root)
        text, used = decode_complete(data, job.done and end >= total)
        new_offset = min(max(0, offset), total) + used
        return {"text": text, "offset": new_offset, "done": job.done and new_offset >= total}

    def read_log_tail(self, job_id: str, lines: int) -> dict[str, Any]:
        """The last ``lines`` lines, with the offset to follow from."""
        job = self.get(job_id)
        paths = self.paths(job.id)
        total = log_size([paths.prepare_log, paths.job_log], paths.root)
        return {"text": self.logs(job.id, tail=lines), "offset": total, "done": job.done}

    def stream(self, job_id: str, *, poll_s: float = 0.2, from_start: bool = True
               ) -> Iterator[str]:
        """Yield log lines as they are written, until the job ends and its log is drained."""
        offset = 0 if from_start else self.read_log_tail(job_id, 1)["offset"]
        partial = ""
        while True:
            chunk = self.read_log(job_id, offset)
            offset = chunk["offset"]
            *lines, partial = (partial + chunk["text"]).split("\n")
            yield from lines
            if chunk["done"]:
                if partial:
                    yield partial
                return
            if not chunk["text"]:
                time.sleep(poll_s)

    def wait(self, job_id: str, *, timeout: float | None = None, poll_s: float = 0.05) -> Job:
        """Block until the job ends; returns it (raises TimeoutError after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            time.sleep(poll_s)
