"""REST confinement of URIs (issue 9, defect 7): only the URI forms the job submission reads as
job outputs or datastore paths pass; any other ``mlws://`` text would be read as a local path
relative to the server's working folder, so it is refused, as is a ``..`` part."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mlws.errors import UnsafePathError
from jupyter_mlws.server.confine import confine_input_value


@pytest.mark.parametrize("uri", [
    "mlws://datastores/shelf/../../../../../../../../etc/shadow",
    "azureml://datastores/shelf/x/../../../../etc/shadow",
    "mlws://jobs/j1/../../../../../../etc/passwd",
    "mlws://jobs/j1/outputs/../../../../etc/passwd",
    "mlws://datastores/shelf/paths/a/../../../etc/passwd",
    "mlws://jobs/j1/outputs/..",
    "mlws://datastores/shelf/paths/../x",
])
def test_uris_that_are_no_output_or_datastore_path_are_refused(tmp_path: Path, uri: str) -> None:
    with pytest.raises(UnsafePathError):
        confine_input_value(tmp_path, "src", uri)
    with pytest.raises(UnsafePathError):
        confine_input_value(tmp_path, "src", {"type": "uri_file", "path": uri})


@pytest.mark.parametrize("uri", [
    "mlws://datastores/shelf/paths/f.txt",
    "azureml://datastores/shelf/paths/a/b/",
    "mlws://jobs/j1/outputs/model",
    "azureml://jobs/j1/outputs/model/weights.bin",
])
def test_output_and_datastore_uris_pass(tmp_path: Path, uri: str) -> None:
    assert confine_input_value(tmp_path, "src", uri) == uri
