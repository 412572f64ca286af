"""``limits.timeout`` as an ISO 8601 duration (the form Azure ML's REST API and SDK take)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result

from jupyter_mlws import Workspace
from jupyter_mlws.assets.job import CommandJobSpec
from jupyter_mlws.errors import SpecError
from tests.azure.test_command_yaml import run_spec


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT2S", 2.0), ("PT1M30S", 90.0), ("PT2H", 7200.0), ("P1DT1H", 90000.0), ("pt0.5s", 0.5),
    (600, 600.0),
])
def test_durations_become_seconds(text: object, seconds: float) -> None:
    spec = CommandJobSpec.model_validate({"command": "echo", "limits": {"timeout": text}})
    assert spec.job_timeout == seconds


@pytest.mark.parametrize("text", ["P", "PT", "2 hours", "PT-1S", "PT0S"])
def test_a_bad_duration_is_refused(ws: Workspace, tmp_path, text: str) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "job.yml"
    spec.write_text(f"command: echo hi\nlimits:\n  timeout: {text}\n")
    with pytest.raises(SpecError) as err:
        ws.jobs.create_from_file(spec)
    assert "timeout" in str(err.value)


def test_an_iso_timeout_stops_the_job(mlws: Callable[..., Result], cli_ws: Workspace) -> None:
    job, _ = run_spec(mlws, "command-iso-timeout.yml", code=1)
    assert job["status"] == "Failed"
    assert "timed out after 2.0 s" in job["error"]
