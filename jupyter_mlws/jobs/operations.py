"""``ws.jobs``: submit notebooks, commands and pipelines; follow, cancel and inspect them.

The facade is composed of one part per concern: submission (``jobs/submit.py``), reading and
logs (``jobs/queries.py``) and acting on submitted jobs (``jobs/lifecycle.py``). Surfaces submit
one request model (``jobs/requests.py``) and render one view (``jobs/detail.py``).
"""

from __future__ import annotations

from typing import Any

from jupyter_mlws.jobs.lifecycle import RUNNER_START_GRACE_S, JobLifecycle
from jupyter_mlws.jobs.model import ACTIVE_VALUES, TERMINAL_VALUES, Job
from jupyter_mlws.jobs.notebooks import notebook_parameters
from jupyter_mlws.jobs.submit import JobSubmission, new_job_id, package_dir
from jupyter_mlws.jobs.team_files import TeamJobFiles
from jupyter_mlws.sweeps.operations import SweepOperations


class JobOperations(TeamJobFiles, JobLifecycle, JobSubmission, SweepOperations):
    """``ws.jobs``: submission, queries and logs, and lifecycle of jobs."""

    def detail(self, job_id: str) -> Any:
        """One view of a job (see :func:`jupyter_mlws.jobs.detail.build_job_detail`)."""
        from jupyter_mlws.jobs.detail import build_job_detail

        return build_job_detail(self, job_id)

    def submit(self, request: Any) -> Job:
        """Submit a notebook or command job request (see :mod:`jupyter_mlws.jobs.requests`)."""
        from jupyter_mlws.jobs.requests import submit_request

        return submit_request(self, request)


__all__ = ["ACTIVE_VALUES", "RUNNER_START_GRACE_S", "TERMINAL_VALUES", "JobOperations",
           "new_job_id", "notebook_parameters", "package_dir"]
