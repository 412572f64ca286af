"""Secrets nested in a datastore's storage_options (s3fs takes ``client_kwargs``): refused like
top-level ones, so they are never stored in plain text, shown, or hashed."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import SpecError


@pytest.mark.parametrize("options", [
    {"client_kwargs": {"aws_secret_access_key": "s3cr3tPASS"}},
    {"client_kwargs": {"endpoint_url": "http://AKIAKEY:s3cr3tPASS@minio:9000"}},
    {"config_kwargs": {"nested": [{"token": "s3cr3tPASS"}]}},
])
def test_a_nested_secret_in_storage_options_is_refused(ws: Workspace,
                                                       options: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as err:
        ws.datastores.create("ds", type="fsspec", url="s3://bucket", storage_options=options)
    assert "s3cr3tPASS" not in str(err.value) and "credentials" in str(err.value)
    assert sorted(ws.datastores.names()) == ["local", "workspaceblobstore"]


def test_plain_nested_options_are_kept(ws: Workspace) -> None:
    options = {"client_kwargs": {"endpoint_url": "http://minio:9000", "region_name": "x"}}
    ds = ws.datastores.create("ds", type="fsspec", url="s3://bucket", storage_options=options)
    assert ds.spec["storage_options"] == options
