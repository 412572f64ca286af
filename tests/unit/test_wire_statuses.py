"""The REST wire spells job states as the job model does (one source, no copied strings)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import jupyter_mlws.server.wire as wire
from jupyter_mlws.errors import ValidationError
from jupyter_mlws.jobs.model import JobStatus


def test_the_status_filter_knows_exactly_the_job_states() -> None:
    assert tuple(s.value for s in JobStatus) == wire.JOB_STATUSES
    query = wire.JobListQuery(status="queued, RUNNING,Canceled")
    assert query.statuses() == ["Queued", "Running", "Canceled"]
    with pytest.raises(ValidationError, match="Unknown job status Sleeping"):
        wire.JobListQuery(status="Sleeping").statuses()


def test_the_written_contract_lists_the_same_states() -> None:
    spec = yaml.safe_load((Path(wire.__file__).parent / "openapi.yaml").read_text())
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            enum = node.get("enum")
            if isinstance(enum, list) and "Queued" in enum:
                found.append(tuple(enum))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert found and all(set(e) == set(wire.JOB_STATUSES) for e in found)
