"""What runs only in Azure ML is refused by name, before anything is laid out."""

from __future__ import annotations

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import CloudOnlyError
from tests.azure.conftest import SPECS


@pytest.mark.parametrize(("spec", "what"), [
    ("automl.yml", "An AutoML job runs only in Azure ML"),
    ("spark.yml", "A Spark job runs only in Azure ML"),
    ("schedule.yml", "A Schedule runs only in Azure ML"),
    ("data-import.yml", "A DataImport job runs only in Azure ML"),
    ("pipeline-spark-step.yml", "step 'wrangle': A Spark job runs only in Azure ML"),
])
def test_cloud_only_job_types_are_refused_by_name(mlws, cli_ws: Workspace, spec: str,  # type: ignore[no-untyped-def]
                                                  what: str) -> None:
    out = mlws("job", "create", "-f", str(SPECS / "cloud_only" / spec), code=1).output
    assert what in out and "cannot run on a local workspace" in out
    assert "Traceback" not in out and "unknown field" not in out
    assert cli_ws.jobs.list() == []
    with pytest.raises(CloudOnlyError):
        cli_ws.jobs.create_from_file(SPECS / "cloud_only" / spec)
