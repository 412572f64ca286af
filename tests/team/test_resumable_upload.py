"""A killed multipart upload is resumed by the next registration of the same blob: only the
parts the server lacks (or holds with other bytes) are sent, the object appears complete and
byte-identical, and no upload or state file is left behind. Real SeaweedFS, real processes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.artifacts.backends import S3Backend, blob_key
from tests.team.conftest import ROOT, Team

PART_MB = 5

REGISTER = """
import sys
from jupyter_mlws import Workspace
ws = Workspace.open(sys.argv[1])
ws.models.create("big", sys.argv[2])
"""


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_S3_PART_MB", str(PART_MB))


def _big_file(path: Path, mb: int = 18) -> str:
    """A file of ``mb`` random MB (4 parts of 5 MB); its sha256."""
    with open(path, "wb") as f:
        f.write(os.urandom(mb << 20))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _open_uploads(team: Team) -> list[dict]:  # type: ignore[type-arg]
    got = team.s3().list_multipart_uploads(Bucket="mlws", Prefix=team.prefix + "/")
    return list(got.get("Uploads", []))


def _uploads(folder: Path) -> Path:
    """The workspace's machine-local folder of upload states."""
    with Workspace.open(folder) as ws:
        return ws.artifacts.root / "uploads"


def _state_files(folder: Path) -> list[Path]:
    uploads = _uploads(folder)
    return sorted(uploads.glob("*.json")) if uploads.exists() else []


def _check_stored(ws: Workspace, team: Team, big: Path, sha: str) -> None:
    """The model's file downloads byte-identical; nothing is left open or recorded."""
    remote = ws.artifacts.remote
    assert isinstance(remote, S3Backend)
    head = team.s3().head_object(Bucket="mlws", Key=blob_key(team.prefix, sha))
    assert head["Metadata"].get("sha256") == sha
    out = ws.models.download("big", "1", big.parent / "out")
    out = Path(out)
    files = [out] if out.is_file() else [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 1 and hashlib.sha256(files[0].read_bytes()).hexdigest() == sha
    assert files[0].read_bytes() == big.read_bytes()
    assert _open_uploads(team) == []


def test_a_killed_upload_is_resumed_without_resending_its_parts(
    team: Team, tmp_path: Path, small_parts: None
) -> None:
    folder = tmp_path / "A"
    Workspace.init(folder, store_uri=team.store_uri, artifact_uri=team.artifact_uri).close()
    big = tmp_path / "big.bin"
    sha = _big_file(big)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLWS_UPLOAD_TEST_FAULT": "after-part-1"}
    proc = subprocess.run([sys.executable, "-c", REGISTER, str(folder), str(big)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # killed after its first part: nothing visible, one open upload, its state recorded
    assert not any(k.endswith(sha[2:]) for k in team.object_keys())
    states = _state_files(folder)
    assert [p.name for p in states] == [f"{sha}.json"]
    assert states[0].stat().st_mode & 0o777 == 0o600
    state = json.loads(states[0].read_text())
    assert state["sha256"] == sha and state["part_bytes"] == PART_MB << 20
    assert "secret" not in states[0].read_text().lower()
    assert [u["UploadId"] for u in _open_uploads(team)] == [state["upload_id"]]
    with Workspace.open(folder) as ws:
        assert ws.models.list("big") == []
        assert ws.models.create("big", big).version == "1"
        remote = ws.artifacts.remote
        assert isinstance(remote, S3Backend) and remote.last_upload is not None
        stats = remote.last_upload
        assert stats.resumed and stats.parts == 4
        assert stats.kept == [1] and stats.sent == [2, 3, 4]
        _check_stored(ws, team, big, sha)
    assert list(_uploads(folder).iterdir()) == []  # no state, no lock file


def test_a_part_held_with_other_bytes_is_sent_again(
    team: Team, tmp_path: Path, small_parts: None
) -> None:
    folder = tmp_path / "A"
    Workspace.init(folder, store_uri=team.store_uri, artifact_uri=team.artifact_uri).close()
    big = tmp_path / "big.bin"
    sha = _big_file(big, mb=13)  # 3 parts
    key = blob_key(team.prefix, sha)
    s3 = team.s3()
    upload_id = s3.create_multipart_upload(Bucket="mlws", Key=key,
                                           Metadata={"sha256": sha})["UploadId"]
    with open(big, "rb") as f:
        f.seek(PART_MB << 20)
        s3.upload_part(Bucket="mlws", Key=key, UploadId=upload_id, PartNumber=2,
                       Body=f.read(PART_MB << 20))  # the right bytes
    s3.upload_part(Bucket="mlws", Key=key, UploadId=upload_id, PartNumber=1,
                   Body=os.urandom(PART_MB << 20))  # other bytes
    uploads = _uploads(folder)
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / f"{sha}.json").write_text(json.dumps({
        "bucket": "mlws", "key": key, "sha256": sha, "size": big.stat().st_size,
        "upload_id": upload_id, "part_bytes": PART_MB << 20, "started": time.time()}))
    with Workspace.open(folder) as ws:
        assert ws.models.create("big", big).version == "1"
        remote = ws.artifacts.remote
        assert isinstance(remote, S3Backend) and remote.last_upload is not None
        stats = remote.last_upload
        assert stats.resumed and stats.kept == [2] and stats.sent == [1, 3]
        _check_stored(ws, team, big, sha)
    assert list(_uploads(folder).iterdir()) == []  # no state, no lock file


def test_a_gone_or_stale_upload_starts_afresh(
    team: Team, tmp_path: Path, small_parts: None
) -> None:
    folder = tmp_path / "A"
    Workspace.init(folder, store_uri=team.store_uri, artifact_uri=team.artifact_uri).close()
    big = tmp_path / "big.bin"
    sha = _big_file(big, mb=11)
    key = blob_key(team.prefix, sha)
    s3 = team.s3()
    uploads = _uploads(folder)
    uploads.mkdir(parents=True, exist_ok=True)
    # a state whose upload the server no longer knows
    gone = s3.create_multipart_upload(Bucket="mlws", Key=key)["UploadId"]
    s3.abort_multipart_upload(Bucket="mlws", Key=key, UploadId=gone)
    (uploads / f"{sha}.json").write_text(json.dumps({
        "bucket": "mlws", "key": key, "sha256": sha, "size": big.stat().st_size,
        "upload_id": gone, "part_bytes": PART_MB << 20, "started": time.time()}))
    # a stale state of another blob, whose upload is still open: aborted and removed
    other_key = blob_key(team.prefix, "ab" * 32)
    stale = s3.create_multipart_upload(Bucket="mlws", Key=other_key)["UploadId"]
    (uploads / f"{'ab' * 32}.json").write_text(json.dumps({
        "bucket": "mlws", "key": other_key, "sha256": "ab" * 32, "size": 1,
        "upload_id": stale, "part_bytes": PART_MB << 20, "started": 1.0}))
    with Workspace.open(folder) as ws:
        assert ws.models.create("big", big).version == "1"
        remote = ws.artifacts.remote
        assert isinstance(remote, S3Backend) and remote.last_upload is not None
        assert remote.last_upload.sent == [1, 2, 3] and not remote.last_upload.kept
        _check_stored(ws, team, big, sha)
    assert list(_uploads(folder).iterdir()) == []  # no state, no lock file


def test_gc_aborts_uploads_older_than_its_grace_only(team: Team, tmp_path: Path) -> None:
    folder = tmp_path / "A"
    ws = Workspace.init(folder, store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    try:
        s3 = team.s3()
        key = blob_key(team.prefix, "cd" * 32)
        old = s3.create_multipart_upload(Bucket="mlws", Key=key)["UploadId"]
        s3.upload_part(Bucket="mlws", Key=key, UploadId=old, PartNumber=1, Body=b"x" * 1024)
        ws.artifacts.garbage_collect(set, older_than_s=3600.0)
        assert [u["UploadId"] for u in _open_uploads(team)] == [old]  # within the grace
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # let the server's clock pass the upload's start
            ws.artifacts.garbage_collect(set, older_than_s=1.0)
            if not _open_uploads(team):
                break
            time.sleep(0.5)
        assert _open_uploads(team) == []
    finally:
        ws.close()
