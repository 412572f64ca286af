"""A team workspace without servers: a shared SQLite file and a ``file://`` artifact store (any
fsspec URL works the same way); the bounded LRU cache; a tampered remote blob."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import ArtifactStoreUnavailableError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    for key in ("MLWS_STORE_URI", "MLWS_ARTIFACT_URI", "MLWS_WORKSPACE", "MLWS_ARTIFACT_CACHE_MB"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "bucket").mkdir()
    return f"sqlite:///{tmp_path / 'team.db'}", f"file://{tmp_path / 'bucket'}/team"


def test_two_folders_share_a_file_url_artifact_store(
    shared: tuple[str, str], tmp_path: Path
) -> None:
    store_uri, artifact_uri = shared
    a = Workspace.init(tmp_path / "A", store_uri=store_uri, artifact_uri=artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=store_uri, join=True)
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(50_000))
    m = a.models.create("m", f)
    blob = tmp_path / "bucket" / "team" / "blobs" / m.artifact["sha256"][:2] / m.artifact[
        "sha256"][2:]
    assert blob.read_bytes() == f.read_bytes()
    assert not list((tmp_path / "bucket" / "team" / "tmp").iterdir())  # moved into place
    assert b.models.download("m", "1", tmp_path / "out").read_bytes() == f.read_bytes()


def test_the_cache_keeps_the_most_recently_used_blobs_within_its_bound(
    shared: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_uri, artifact_uri = shared
    a = Workspace.init(tmp_path / "A", store_uri=store_uri, artifact_uri=artifact_uri)
    monkeypatch.setenv("MLWS_ARTIFACT_CACHE_MB", "1")
    b = Workspace.init(tmp_path / "B", store_uri=store_uri, join=True)
    files = []
    for i in range(3):
        f = tmp_path / f"w{i}.bin"
        f.write_bytes(os.urandom(600_000))
        files.append(f)
        a.models.create(f"m{i}", f)
    for i, f in enumerate(files):
        got = b.models.download(f"m{i}", "1", tmp_path / f"out{i}")
        assert got.read_bytes() == f.read_bytes()
    cached = [p for p in b.artifacts.cache.folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in cached) <= 1 << 20
    newest = b.models.get("m2", "1").artifact["sha256"]
    assert b.artifacts.cache.path(newest).is_file()
    oldest = b.models.get("m0", "1").artifact["sha256"]
    assert not b.artifacts.cache.path(oldest).exists()
    # an evicted blob is fetched again, whole
    assert b.models.download("m0", "1", tmp_path / "again").read_bytes() == files[0].read_bytes()


def test_a_tampered_remote_blob_is_refused_and_not_cached(
    shared: tuple[str, str], tmp_path: Path
) -> None:
    store_uri, artifact_uri = shared
    a = Workspace.init(tmp_path / "A", store_uri=store_uri, artifact_uri=artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=store_uri, join=True)
    f = tmp_path / "w.bin"
    f.write_bytes(b"the real weights")
    sha = a.models.create("m", f).artifact["sha256"]
    blob = tmp_path / "bucket" / "team" / "blobs" / sha[:2] / sha[2:]
    blob.write_bytes(b"something else!!")
    with pytest.raises(ArtifactStoreUnavailableError, match="does not hold what its name says"):
        b.models.download("m", "1", tmp_path / "out")
    assert not b.artifacts.cache.path(sha).exists()
    assert not (tmp_path / "out" / "w.bin").exists()


def _mlws(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "jupyter_mlws.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_init_and_join(shared: tuple[str, str], tmp_path: Path) -> None:
    store_uri, artifact_uri = shared
    made = _mlws("workspace", "init", str(tmp_path / "A"), "--store-uri", store_uri,
                 "--artifact-uri", artifact_uri, "-o", "json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["artifacts"] == artifact_uri
    joined = _mlws("workspace", "join", str(tmp_path / "B"), "--store-uri", store_uri,
                   cwd=tmp_path)
    assert joined.returncode == 0, joined.stderr
    assert f"artifacts {artifact_uri}" in joined.stdout
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    refused = _mlws("workspace", "join", str(tmp_path / "C"), "--store-uri", empty, cwd=tmp_path)
    assert refused.returncode != 0
    assert "no workspace to join" in refused.stderr and "Traceback" not in refused.stderr
    bad = _mlws("workspace", "init", str(tmp_path / "D"), "--store-uri", store_uri,
                "--artifact-uri", "s3://AKIA:topsecret@bucket/x", cwd=tmp_path)
    assert bad.returncode != 0 and "topsecret" not in bad.stderr + bad.stdout


def test_join_refuses_a_workspace_whose_files_stay_on_one_machine(
    shared: tuple[str, str], tmp_path: Path
) -> None:
    from jupyter_mlws.errors import TeamWorkspaceError

    store_uri, _artifact_uri = shared
    Workspace.init(tmp_path / "A", store_uri=store_uri).close()
    with pytest.raises(TeamWorkspaceError, match="another machine could see its versions"):
        Workspace.init(tmp_path / "B", store_uri=store_uri, join=True)
    assert not (tmp_path / "B").exists()
