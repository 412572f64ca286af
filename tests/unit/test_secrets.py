"""Datastore credentials: encrypted at rest with a key outside the workspace, never shown, never
hashed; workspace files private; credentials in URLs refused (issue 9, defect 8)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from jupyter_mlws import Workspace
from jupyter_mlws.crypto import ENV_SECRET_KEY, is_encrypted, key_file
from jupyter_mlws.errors import SecretKeyError, SpecError, VersionConflictError
from jupyter_mlws.store.base import NewVersion


def _secret() -> str:
    return "PW-" + uuid.uuid4().hex


def _raw_store_bytes(ws: Workspace) -> bytes:
    """Every byte SQLite keeps for the workspace: the database, its WAL and shared memory."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = ws.path / f"mlws.db{suffix}"
        if p.exists():
            out += p.read_bytes()
    return out


def _s3(ws: Workspace, name: str, password: str, **kw: object):  # type: ignore[no-untyped-def]
    return ws.datastores.create(name, type="fsspec", url="s3://bucket/prefix",
                                credentials={"key": "AKIA-ID", "secret": password}, **kw)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_credentials_are_encrypted_in_the_database_and_its_wal(ws: Workspace) -> None:
    password = _secret()
    _s3(ws, "s3a", password)
    # read while the workspace is open (the WAL holds the latest pages) and after it closed
    assert password.encode() not in _raw_store_bytes(ws)
    assert ws.datastores.credentials("s3a") == {"key": "AKIA-ID", "secret": password}
    stored = ws.store.get_secret("datastore", "s3a", "1")
    assert is_encrypted(stored) and password not in json.dumps(stored)
    ws.close()
    assert password.encode() not in _raw_store_bytes(ws)
    with Workspace.open(ws.path) as again:
        assert again.datastores.credentials("s3a")["secret"] == password


def test_the_key_is_a_private_file_outside_the_workspace(ws: Workspace) -> None:
    _s3(ws, "s3a", _secret())
    key = key_file()
    assert key == Path.home() / ".config" / "mlws" / "secret.key"
    assert _mode(key) == 0o600 and _mode(key.parent) == 0o700
    assert ws.path not in key.parents
    assert key.read_bytes().strip() not in _raw_store_bytes(ws)


def test_xdg_config_home_and_the_environment_variable_choose_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    with Workspace.init(tmp_path / "p1") as ws:
        _s3(ws, "s3a", "pw1")
    assert (tmp_path / "cfg" / "mlws" / "secret.key").is_file()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg2"))
    monkeypatch.setenv(ENV_SECRET_KEY, Fernet.generate_key().decode())
    with Workspace.init(tmp_path / "p2") as ws:
        _s3(ws, "s3a", "pw2")
        assert ws.datastores.credentials("s3a")["secret"] == "pw2"
    assert not (tmp_path / "cfg2").exists()  # the variable's key is used, no file is made


def test_a_wrong_or_missing_key_is_a_typed_error_that_says_which_key(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = _secret()
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv(ENV_SECRET_KEY, key_a)
    _s3(ws, "s3a", password)
    monkeypatch.setenv(ENV_SECRET_KEY, key_b)
    with pytest.raises(SecretKeyError) as err:
        ws.datastores.credentials("s3a")
    text = str(err.value)
    stored_id = ws.store.get_secret("datastore", "s3a", "1")["key_id"]  # type: ignore[index]
    assert stored_id in text and ENV_SECRET_KEY in text and "\n" not in text
    assert password not in text and key_a not in text and key_b not in text
    # rotation: several keys, the first encrypts, all decrypt
    monkeypatch.setenv(ENV_SECRET_KEY, f"{key_b},{key_a}")
    assert ws.datastores.credentials("s3a")["secret"] == password
    # no variable and no key file: says where a key would come from
    monkeypatch.delenv(ENV_SECRET_KEY)
    with pytest.raises(SecretKeyError) as err:
        ws.datastores.credentials("s3a")
    assert ENV_SECRET_KEY in str(err.value) and str(key_file()) in str(err.value)
    assert not key_file().exists()  # reading never makes a key that could not open anything
    monkeypatch.setenv(ENV_SECRET_KEY, "not-a-key")
    with pytest.raises(SecretKeyError, match="not a valid Fernet key"):
        ws.datastores.credentials("s3a")


def test_a_key_file_others_can_read_is_refused(ws: Workspace) -> None:
    _s3(ws, "s3a", "pw")
    os.chmod(key_file(), 0o644)
    with pytest.raises(SecretKeyError, match="chmod 600"):
        ws.datastores.credentials("s3a")


def _wave1_plaintext(ws: Workspace, password: str) -> None:
    """What wave 1 wrote: the credentials as plain JSON beside the version."""
    ws.store.create_version(NewVersion(
        kind="datastore", name="old", version=None, content_hash="h" * 64,
        spec={"type": "fsspec", "url": "s3://bucket", "storage_options": {},
              "credential_names": ["secret"]},
        secret={"secret": password},
    ))
    ws.store.set_meta("secrets_encrypted", "")  # a wave-1 store never had this mark


def test_plaintext_secrets_of_wave_1_are_encrypted_when_the_workspace_opens(
    ws: Workspace
) -> None:
    password = _secret()
    _wave1_plaintext(ws, password)
    ws.close()
    assert password.encode() in _raw_store_bytes(ws)  # the defect, as wave 1 left it
    with Workspace.open(ws.path) as again:
        assert is_encrypted(again.store.get_secret("datastore", "old", "1"))
        assert again.datastores.credentials("old") == {"secret": password}
    assert password.encode() not in _raw_store_bytes(ws)


def test_plaintext_secrets_of_wave_1_are_encrypted_when_read(ws: Workspace) -> None:
    password = _secret()
    _wave1_plaintext(ws, password)
    assert ws.datastores.credentials("old") == {"secret": password}
    assert is_encrypted(ws.store.get_secret("datastore", "old", "1"))
    ws.close()
    assert password.encode() not in _raw_store_bytes(ws)


def test_workspace_files_and_folders_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which made mlws.db 0644
    try:
        ws = Workspace.init(tmp_path / "project")
        _s3(ws, "s3a", "pw")  # writes through the WAL
        assert _mode(ws.path) == 0o700
        assert _mode(ws.path / "workspace.yaml") == 0o600
        assert _mode(ws.artifacts.root) == 0o700
        for name in ("mlws.db", "mlws.db-wal", "mlws.db-shm"):
            assert (ws.path / name).exists(), name
            assert _mode(ws.path / name) == 0o600, name
        ws.close()
    finally:
        os.umask(old)


def test_an_older_workspace_database_is_made_private_when_opened(ws: Workspace) -> None:
    ws.close()
    os.chmod(ws.path / "mlws.db", 0o644)
    with Workspace.open(ws.path):
        assert _mode(ws.path / "mlws.db") == 0o600


@pytest.mark.parametrize("url", [
    "s3://AKIAKEY:s3cr3tPASS@bucket/prefix",
    "https://user:s3cr3tPASS@example.org/data",
    "abfs://s3cr3tPASS@container",
])
def test_credentials_in_urls_are_refused_without_echoing_them(
    ws: Workspace, tmp_path: Path, url: str
) -> None:
    with pytest.raises(SpecError) as err:
        ws.datastores.create("ds", type="fsspec", url=url)
    text = str(err.value)
    assert "s3cr3tPASS" not in text and "AKIAKEY" not in text and "\n" not in text
    assert "credentials" in text
    with pytest.raises(SpecError) as err:
        ws.data.create("d", path=url)
    assert "s3cr3tPASS" not in str(err.value)
    spec = tmp_path / "data.yaml"
    spec.write_text("$schema: mlws://schemas/data.schema.json\n"
                    f"name: d\ntype: uri_folder\npath: {url}\n")
    with pytest.raises(SpecError) as err:
        ws.create_from_file(spec)
    assert "s3cr3tPASS" not in str(err.value) and "data.yaml:4" in str(err.value)
    spec.write_text("$schema: mlws://schemas/datastore.schema.json\n"
                    f"name: ds\ntype: fsspec\nurl: {url}\n")
    with pytest.raises(SpecError) as err:
        ws.create_from_file(spec)
    assert "s3cr3tPASS" not in str(err.value)
    assert sorted(ws.datastores.names()) == ["local", "workspaceblobstore"]


def test_the_hash_does_not_depend_on_the_credentials(ws: Workspace) -> None:
    p1, p2 = _secret(), _secret()
    a = _s3(ws, "a", p1)
    b = _s3(ws, "b", p2)
    assert a.content_hash == b.content_hash
    assert p1 not in a.content_hash and p2 not in b.content_hash
    # the same version again with other credentials is a conflict, not a silent reuse
    ws.datastores.create("v", type="fsspec", url="s3://bucket/prefix", version="1",
                         credentials={"key": "AKIA-ID", "secret": p1})
    with pytest.raises(VersionConflictError) as err:
        ws.datastores.create("v", type="fsspec", url="s3://bucket/prefix", version="1",
                             credentials={"key": "AKIA-ID", "secret": p2})
    assert p1 not in str(err.value) and p2 not in str(err.value)
    # and with the same credentials it is the same version
    same = ws.datastores.create("v", type="fsspec", url="s3://bucket/prefix", version="1",
                                credentials={"key": "AKIA-ID", "secret": p1})
    assert same.version == "1"


def test_the_secret_never_appears_in_any_output(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    password = _secret()
    with caplog.at_level(logging.DEBUG):
        ds = _s3(ws, "s3a", password)
        ws.datastores.credentials("s3a")
    assert password not in caplog.text
    shown = [json.dumps(ds.public_dict()), repr(ds), str(ds.model_dump()),
             json.dumps([d.public_dict() for d in ws.datastores.list()]), ds.content_hash]
    assert all(password not in text for text in shown)
    env = {**os.environ, "MLWS_WORKSPACE": str(ws.path)}
    for args in (["datastore", "show", "s3a", "-o", "json"], ["datastore", "show", "s3a", "-o",
                 "yaml"], ["datastore", "show", "s3a"], ["datastore", "list", "-o", "json"],
                 ["datastore", "list"]):
        proc = subprocess.run([sys.executable, "-m", "jupyter_mlws.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert password not in proc.stdout + proc.stderr, args
        assert "AKIA-ID" not in proc.stdout + proc.stderr, args


def test_a_wave_1_datastore_registered_again_with_its_version_is_the_same_version(
    ws: Workspace
) -> None:
    """Wave 1 put a digest of the secret into the hash; the same spec and credentials with the
    same version must still be the existing version, not a conflict."""
    password = _secret()
    _wave1_plaintext(ws, password)
    again = ws.datastores.create("old", type="fsspec", url="s3://bucket", version="1",
                                 credentials={"secret": password})
    assert again.version == "1" and again.content_hash == "h" * 64
    with pytest.raises(VersionConflictError, match="other credentials"):
        ws.datastores.create("old", type="fsspec", url="s3://bucket", version="1",
                             credentials={"secret": _secret()})


def test_a_url_with_credentials_stored_by_wave_1_is_shown_masked(ws: Workspace) -> None:
    ws.store.create_version(NewVersion(
        kind="datastore", name="old", version=None, content_hash="h" * 64,
        spec={"type": "fsspec", "url": "s3://AKIAKEY:s3cr3tPASS@bucket/p", "storage_options": {},
              "credential_names": []},
    ))
    text = json.dumps(ws.datastores.get("old").public_dict())
    assert "s3cr3tPASS" not in text and "AKIAKEY" not in text
    assert "s3://***@bucket/p" in text
