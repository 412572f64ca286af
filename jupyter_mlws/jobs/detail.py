"""Builds the one :class:`JobDetail` view of a job from public ``JobOperations`` queries."""

from __future__ import annotations

from typing import Any

from jupyter_mlws.jobs.model import JobDetail


def build_job_detail(jobs_ops: Any, job_id: str) -> JobDetail:
    """The job with its events, parameters, metrics, lineage, products, steps and progress."""
    job = jobs_ops.get(job_id)
    io = jobs_ops.io(job.id)
    return JobDetail(
        job=job,
        events=jobs_ops.events(job.id),
        params=jobs_ops.params(job.id),
        metrics=jobs_ops.metrics(job.id),
        inputs=[x for x in io if x.direction == "input"],
        outputs=[x for x in io if x.direction == "output"],
        produced=jobs_ops.produced(job.id),
        children=[c.id for c in jobs_ops.children(job.id)],
        progress=jobs_ops.progress(job.id) if job.type == "notebook" else None,
    )


__all__ = ["build_job_detail"]
