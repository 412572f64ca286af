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


ENV_SCORE = '''\
import os

def init():
    pass

def run(raw_data):
    return {"key": os.environ.get("MLWS_SECRET_KEY")}
'''


def test_a_scoring_script_does_not_get_the_secret_key(
        eps: Workspace, yaml_files, project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cryptography.fernet import Fernet

    monkeypatch.setenv("MLWS_SECRET_KEY", Fernet.generate_key().decode())
    (project / "envcode").mkdir()
    (project / "envcode" / "score.py").write_text(ENV_SCORE)
    eps.endpoints.create(yaml_files("endpoint", "ep-test"))
    eps.endpoints.create_deployment(
        {"name": "blue", "endpoint_name": "ep-test", "model": {"path": str(project / "model")},
         "code_configuration": {"code": str(project / "envcode"), "scoring_script": "score.py"}},
        all_traffic=True)
    answer = eps.endpoints.invoke("ep-test", b"{}")
    assert answer.ok, answer.body
    assert answer.body == '{"key": null}'
