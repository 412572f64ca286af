"""``ws.jobs``: submit notebooks, commands and pipelines; follow, cancel and inspect them.

The facade is composed of one part per concern: submission (``jobs/submit.py``), reading and
logs (``jobs/queries.py``) and acting on submitted jobs (``jobs/lifecycle.py``).
"""

from __future__ import annotations

from jupyter_mlws.jobs.lifecycle import RUNNER_START_GRACE_S, JobLifecycle
from jupyter_mlws.jobs.model import ACTIVE_VALUES, TERMINAL_VALUES
from jupyter_mlws.jobs.notebooks import notebook_parameters
from jupyter_mlws.jobs.submit import JobSubmission, new_job_id, package_dir


class JobOperations(JobLifecycle, JobSubmission):
    """``ws.jobs``: submission, queries and logs, and lifecycle of jobs."""


__all__ = ["ACTIVE_VALUES", "RUNNER_START_GRACE_S", "TERMINAL_VALUES", "JobOperations",
           "new_job_id", "notebook_parameters", "package_dir"]
