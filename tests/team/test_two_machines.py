"""Two workspace folders ("machines") on one team workspace: PostgreSQL + SeaweedFS (S3)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import TeamWorkspaceError
from tests.team.conftest import Team


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_register_on_a_then_list_and_download_byte_identical_on_b(
    team: Team, tmp_path: Path
) -> None:
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    assert b.settings.artifact_uri == team.artifact_uri  # taken from the team's store
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(os.urandom(3 << 20))
    (model / "sub" / "config.json").write_text('{"layers": 3}')
    (model / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (model / "run.sh").chmod(0o755)
    registered = a.models.create("clf", model)

    listed = b.models.list("clf")
    assert [m.version for m in listed] == [registered.version]
    out = b.models.download("clf", registered.version, tmp_path / "got")
    assert _digest(out) == _digest(model)
    assert os.access(out / "run.sh", os.X_OK)
    # the bytes are in the bucket under their content keys, not in either workspace folder
    keys = team.object_keys()
    assert any(k.endswith(registered.artifact["sha256"][2:]) for k in keys)
    assert not (tmp_path / "A" / ".mlws" / "artifacts" / "blobs").exists() or not any(
        (tmp_path / "A" / ".mlws" / "artifacts" / "blobs").rglob("*"))
    # B kept a verified copy in its cache: the second download needs no S3 read of the weights
    cached = b.artifacts.cache.path(hashlib.sha256((model / "weights.bin").read_bytes())
                                    .hexdigest())
    assert cached.is_file()
    assert b.info()["artifacts"].startswith(team.artifact_uri)
    a.close()
    b.close()


def test_data_registered_on_b_is_downloadable_on_a(team: Team, tmp_path: Path) -> None:
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    f = tmp_path / "rows.csv"
    f.write_text("x,y\n1,2\n")
    b.data.create("rows", f, type="uri_file")
    got = a.data.download("rows", None, tmp_path / "out")
    assert got.read_bytes() == f.read_bytes()


def test_join_needs_a_store_that_holds_a_workspace(team: Team, tmp_path: Path) -> None:
    with pytest.raises(TeamWorkspaceError, match="no workspace to join"):
        Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    assert not (tmp_path / "B").exists()


def test_init_refuses_another_artifact_uri_than_the_team_recorded(
    team: Team, tmp_path: Path
) -> None:
    Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    with pytest.raises(TeamWorkspaceError, match="keeps its artifacts at"):
        Workspace.init(tmp_path / "B", store_uri=team.store_uri,
                       artifact_uri=team.artifact_uri + "-other")


def test_credentials_never_go_into_workspace_files(team: Team, tmp_path: Path) -> None:
    with pytest.raises(TeamWorkspaceError, match="must not carry credentials"):
        Workspace.init(tmp_path / "A", store_uri=team.store_uri,
                       artifact_uri="s3://KEY:SECRET@mlws/x")
    with pytest.raises(TeamWorkspaceError, match="carries a password"):
        Workspace.init(tmp_path / "A", store_uri=team.store_uri.replace(
            "postgres@", "postgres:hunter2@"), artifact_uri=team.artifact_uri)
    Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    settings = (tmp_path / "A" / ".mlws" / "workspace.yaml").read_text()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in settings
    assert os.environ["AWS_ACCESS_KEY_ID"] not in settings
    assert "artifact_uri: " + team.artifact_uri in settings


REGISTER_ONE = """
import sys
from jupyter_mlws import Workspace
ws = Workspace.open(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # the start signal: every process races
print(ws.models.create("racer", sys.argv[2]).version, flush=True)
"""


def test_32_processes_on_two_machines_get_contiguous_versions(
    team: Team, tmp_path: Path
) -> None:
    Workspace.init(tmp_path / "A", store_uri=team.store_uri,
                   artifact_uri=team.artifact_uri).close()
    Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True).close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = []
    for i in range(32):
        f = tmp_path / f"w{i}.bin"
        f.write_bytes(f"weights {i}".encode())
        folder = tmp_path / ("A" if i % 2 else "B")
        procs.append(subprocess.Popen(
            [sys.executable, "-c", REGISTER_ONE, str(folder), str(f)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:  # every process has its workspace open
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=300) for p in procs]
    assert [err[-500:] for (_o, err), p in zip(results, procs) if p.returncode != 0] == []
    assert sorted(int(out.strip()) for out, _ in results) == list(range(1, 33))
    with Workspace.open(tmp_path / "B") as b:
        stored = {m.version: m.artifact["sha256"] for m in b.models.list("racer")}
        assert len(stored) == 32 and len(set(stored.values())) == 32
        got = b.models.download("racer", "7", tmp_path / "seven")
        assert got.read_bytes().startswith(b"weights ")
