"""``invoke`` with a deployment name or key that cannot be an HTTP header: a typed error that
never repeats the key (http.client's own ValueError quotes the whole header, key included)."""

from __future__ import annotations

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import NotFoundError, ValidationError

SECRET = "s3cr3t-KEY-value"


def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(
        eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    eps.endpoints.create(yaml_files("endpoint", "ep-test"))
    for bad in (f"{SECRET}\r\nX-Evil: 1", f"{SECRET}\u20ac"):
        with pytest.raises(ValidationError) as info:
            eps.endpoints.invoke("ep-test", b"{}", key=bad)
        assert SECRET not in str(info.value) and "get-credentials" in str(info.value)


def test_an_unknown_deployment_name_is_not_found(
        eps: Workspace, yaml_files) -> None:  # type: ignore[no-untyped-def]
    eps.endpoints.create(yaml_files("endpoint", "ep-test"))
    for bad in ("blue\r\nX-Evil: 1", "bl\u20acue"):
        with pytest.raises(NotFoundError, match="online-deployment list"):
            eps.endpoints.invoke("ep-test", b"{}", deployment=bad)
