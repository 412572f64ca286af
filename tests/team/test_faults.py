"""A team workspace whose servers fail: typed errors naming which server and where, nothing
half-registered, credentials never echoed, a killed upload leaves no visible blob."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import (
    ArtifactCredentialsError,
    ArtifactStoreUnavailableError,
    MetadataStoreUnavailableError,
)
from tests.team.conftest import ROOT, Team


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _team_ws(team: Team, folder: Path) -> Workspace:
    return Workspace.init(folder, store_uri=team.store_uri, artifact_uri=team.artifact_uri)


def test_s3_down_names_the_artifact_store_and_registers_nothing(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _team_ws(team, tmp_path / "A").close()
    port = _closed_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLWS_ARTIFACT_TIMEOUT", "2")
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    with Workspace.open(tmp_path / "A") as ws, pytest.raises(ArtifactStoreUnavailableError) as err:
        ws.models.create("m", f)
    assert team.artifact_uri in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
    assert "S3 server is up" in str(err.value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", team.servers.env["AWS_ENDPOINT_URL"])
    with Workspace.open(tmp_path / "A") as ws:
        assert ws.models.list("m") == []
        assert ws.models.create("m", f).version == "1"  # the store was left clean


def test_wrong_s3_keys_give_a_clear_error_that_does_not_echo_them(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _team_ws(team, tmp_path / "A").close()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "KWRONGKEY1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-9f8e7d")
    with pytest.raises(ArtifactCredentialsError) as joined:
        Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    with Workspace.open(tmp_path / "A") as ws, pytest.raises(ArtifactCredentialsError) as reg:
        ws.models.create("m", f)
    for err in (joined.value, reg.value):
        text = str(err) + repr(err.to_dict())
        assert "refused the S3 credentials" in text and team.artifact_uri in text
        assert "not-the-secret-9f8e7d" not in text and "KWRONGKEY1234" not in text
    assert not (tmp_path / "B").exists()
    with Workspace.open(tmp_path / "A") as ws:
        assert ws.models.list("m") == []


def test_missing_s3_keys_say_where_to_put_them(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ArtifactCredentialsError, match="No S3 credentials.*AWS_ACCESS_KEY_ID"):
        _team_ws(team, tmp_path / "A")


def test_s3_keys_from_a_credentials_file_profile(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(f"[teamprofile]\naws_access_key_id = {os.environ['AWS_ACCESS_KEY_ID']}\n"
                     f"aws_secret_access_key = {os.environ['AWS_SECRET_ACCESS_KEY']}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "teamprofile")
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    with _team_ws(team, tmp_path / "A") as ws:
        assert ws.models.create("m", f).version == "1"


def test_postgres_down_at_open_names_the_database_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    port = _closed_port()
    monkeypatch.setenv("MLWS_STORE_TIMEOUT", "3")
    with pytest.raises(MetadataStoreUnavailableError) as err:
        Workspace.init(tmp_path / "A", store_uri=f"postgresql+psycopg://postgres@127.0.0.1:{port}/db")
    assert f"127.0.0.1:{port}" in str(err.value) and "PostgreSQL is up" in str(err.value)


def test_postgres_down_mid_session_registers_nothing(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private server (the session's is shared): stopped under an open workspace."""
    monkeypatch.setenv("MLWS_STORE_TIMEOUT", "3")
    up = ROOT / "scripts" / "postgres-up.sh"
    folder = Path(tempfile.mkdtemp(prefix="mlws-pg-down-"))
    try:
        url = subprocess.run(["bash", str(up), str(folder)], capture_output=True, text=True,
                             check=True, timeout=180).stdout.strip().splitlines()[-1]
        ws = Workspace.init(tmp_path / "A", store_uri=url, artifact_uri=team.artifact_uri)
        f = tmp_path / "w.bin"
        f.write_bytes(os.urandom(1000))
        subprocess.run(["bash", str(up), "down", str(folder)], check=True, timeout=120)
        with pytest.raises(MetadataStoreUnavailableError) as err:
            ws.models.create("m", f)
        assert url.split("@", 1)[1].split("/")[0] in str(err.value)
        with pytest.raises(MetadataStoreUnavailableError):  # reads too
            ws.models.list("m")
        ws.close()
        url = subprocess.run(["bash", str(up), str(folder)], capture_output=True, text=True,
                             check=True, timeout=180).stdout.strip().splitlines()[-1]
        monkeypatch.setenv("MLWS_STORE_URI", url)  # it came back on another port
        with Workspace.open(tmp_path / "A") as again:
            assert again.models.list("m") == []
    finally:
        subprocess.run(["bash", str(up), "down", str(folder)], capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", str(folder)], check=False)


REGISTER_BIG = """
import sys
from jupyter_mlws import Workspace
ws = Workspace.open(sys.argv[1])
ws.models.create("big", sys.argv[2])
"""


def test_a_killed_upload_leaves_no_visible_blob_and_no_version(
    team: Team, tmp_path: Path
) -> None:
    _team_ws(team, tmp_path / "A").close()
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(96):
            f.write(os.urandom(1 << 20))
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", REGISTER_BIG, str(tmp_path / "A"), str(big)],
                            env=env, stderr=subprocess.PIPE)
    s3 = team.s3()
    deadline = time.monotonic() + 120
    seen = False
    while time.monotonic() < deadline and proc.poll() is None:  # wait for parts to flow
        uploads = s3.list_multipart_uploads(Bucket="mlws", Prefix=team.prefix + "/")
        if uploads.get("Uploads"):
            seen = True
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert seen, "the upload ended before it could be interrupted"
    assert not any(k.endswith(sha[2:]) for k in team.object_keys())
    with Workspace.open(tmp_path / "A") as ws:
        assert ws.models.list("big") == []
        again = ws.models.create("big", big)  # a new try completes it (resuming the parts already sent)
        assert again.version == "1"
    assert any(k.endswith(sha[2:]) for k in team.object_keys())
