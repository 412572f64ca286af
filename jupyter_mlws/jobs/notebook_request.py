"""What ``mlws job notebook`` submits and what a submission prints, in one place for the CLI
and the job agent's fast path (:mod:`jupyter_mlws.agent.intake`, which imports no CLI module):
the two print the same text because they call the same functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def notebook_request(notebook: str, parameters: Sequence[tuple[str, str]], code: str | None,
                     environment: str | None, compute: str | None, inputs: Sequence[str],
                     outputs: Sequence[str], experiment: str | None,
                     timeout: float | None) -> Any:
    """The :class:`NotebookJobRequest` of ``mlws job notebook`` from its options (``-p NAME
    VALUE`` pairs read as literals, ``-i NAME=VALUE`` inputs, ``--out`` folder names)."""
    from jupyter_mlws.jobs.requests import NotebookJobRequest, parse_assignments, parse_pairs

    return NotebookJobRequest.create(
        notebook=notebook, parameters=parse_pairs(parameters), environment=environment,
        compute=compute, inputs=parse_assignments(inputs, "--input"),
        outputs={o: {"type": "uri_folder"} for o in outputs}, code=code,
        experiment=experiment, timeout=timeout)


def submitted_text(job: Any, *, waited: bool, output: str) -> tuple[str, int]:
    """What ``mlws job ...`` prints about ``job`` after submitting it (``waited``: after it
    ended) in ``output`` (``table``, ``json`` or ``yaml``), and the exit code: 1 when a job
    waited for did not complete."""
    if output == "json":
        text = json.dumps(job.public_dict(), indent=2, default=str) + "\n"
    elif output != "table":
        import yaml

        text = yaml.safe_dump(json.loads(json.dumps(job.public_dict(), default=str)),
                              sort_keys=False, allow_unicode=False) + "\n"
    else:
        text = f"Job {job.id}: {job.status}" + (f" ({job.error})" if job.error else "") + "\n"
        if not waited:
            text += f"  follow it with `mlws job stream {job.id}`\n"
    return text, (1 if waited and job.status != "Completed" else 0)
