"""``mlws workspace migrate``: an embedded workspace (SQLite + folder) copied into a team
workspace (PostgreSQL + SeaweedFS) and compared from another machine (workspace folder)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.assets.base import ASSET_KINDS
from jupyter_mlws.cli import main
from jupyter_mlws.errors import MigrationConflictError, MigrationIntegrityError
from jupyter_mlws.team.migrate import migrate_to
from tests.helpers import stop_jobs
from tests.team.conftest import Team


def _versions(ws: Workspace) -> list[tuple[Any, ...]]:
    out = []
    for kind in ASSET_KINDS:
        for name in ws.store.names(kind, include_hidden=True):
            for a in ws.store.list_versions(kind, name, include_archived=True,
                                            include_hidden=True, limit=None):
                if not a.curated:
                    out.append((a.kind, a.name, a.version, a.content_hash, a.description,
                                sorted(a.tags.items()), a.archived, a.hidden, a.created_by,
                                a.job_id, json.dumps(a.spec, sort_keys=True)))
    return sorted(out)


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _laptop(tmp_path: Path) -> tuple[Workspace, str]:
    """An embedded workspace with models (file, folder, archived), data, an environment and a
    finished job whose output was registered."""
    ws = Workspace.init(tmp_path / "laptop")
    (tmp_path / "w.bin").write_bytes(b"\x00weights" * 1000)
    ws.models.create("clf", tmp_path / "w.bin", description="first", tags={"stage": "dev"})
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("a")
    (tmp_path / "folder" / "sub").mkdir()
    (tmp_path / "folder" / "sub" / "b.txt").write_text("b")
    ws.models.create("clf", tmp_path / "folder")
    ws.models.archive("clf", "1")
    (tmp_path / "rows.csv").write_text("x,y\n1,2\n")
    ws.data.create("rows", tmp_path / "rows.csv", type="uri_file")
    ws.environments.create("tiny", pip_requirements=["six==1.16.0"])
    job = ws.jobs.submit_command(
        "python -c \"import pathlib, sys; print('trained', flush=True); "
        "pathlib.Path(sys.argv[1], 'm.txt').write_text('42')\" ${{outputs.model}}",
        outputs={"model": {"type": "uri_folder"}})
    assert ws.jobs.wait(job.id, timeout=180).status == "Completed", ws.jobs.logs(job.id)
    ws.models.create("from-job", f"mlws://jobs/{job.id}/outputs/model")
    return ws, job.id


def test_migrate_copies_versions_blobs_and_jobs_verified_and_idempotent(
    team: Team, tmp_path: Path
) -> None:
    laptop, job_id = _laptop(tmp_path)
    before_versions, before_blobs = _versions(laptop), _files(laptop.artifacts.blobs)
    b = None
    try:
        first = migrate_to(laptop, team.store_uri, team.artifact_uri)
        assert first.blobs_copied == len(before_blobs) and first.blobs_present == 0
        # the rows every workspace seeds (the local compute...) are there already
        assert first.versions_copied + first.versions_present == len(before_versions)
        assert first.versions_copied == 5 and first.jobs_copied == 1

        b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
        assert _versions(b) == before_versions  # numbers, tags, archived, creator, lineage
        for version in ("1", "2"):
            got = b.models.download("clf", version, tmp_path / f"got-{version}")
            mine = laptop.models.download("clf", version, tmp_path / f"mine-{version}")
            assert _files(got) == _files(mine) if got.is_dir() else (
                got.read_bytes() == mine.read_bytes())
        assert (b.models.download("from-job", None, tmp_path / "fj") / "m.txt").read_text() == "42"
        job, src = b.jobs.get(job_id), laptop.jobs.get(job_id)
        assert (job.status, job.created_at, job.ended_at, job.created_by) == (
            src.status, src.created_at, src.ended_at, src.created_by)
        assert b.jobs.io(job_id) == laptop.jobs.io(job_id)
        assert b.jobs.params(job_id) == laptop.jobs.params(job_id)
        assert b.jobs.produced(job_id) == laptop.jobs.produced(job_id)
        assert b.jobs.logs(job_id) == laptop.jobs.logs(job_id) and "trained" in b.jobs.logs(job_id)
        out = b.jobs.paths(job_id).outputs / "model" / "m.txt"
        assert out.read_text() == "42"

        again = migrate_to(laptop, team.store_uri, None)  # the recorded artifact URI
        assert (again.blobs_copied, again.versions_copied, again.jobs_copied) == (0, 0, 0)
        assert again.blobs_present == first.blobs_copied
        assert again.versions_present == len(before_versions) and again.jobs_present == 1
        assert _versions(b) == before_versions
        # the source is as it was
        assert _versions(laptop) == before_versions
        assert _files(laptop.artifacts.blobs) == before_blobs
    finally:
        stop_jobs(laptop)
        laptop.close()
        if b is not None:
            b.close()


def test_migrate_refuses_conflicting_versions_before_writing_and_a_damaged_blob(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Workspace.init(tmp_path / "one")
    other = Workspace.init(tmp_path / "two")
    try:
        (tmp_path / "a.txt").write_text("one")
        first.models.create("m", tmp_path / "a.txt")
        migrate_to(first, team.store_uri, team.artifact_uri)
        (tmp_path / "b.txt").write_text("two")
        other.models.create("only-two", tmp_path / "b.txt")
        other.models.create("m", tmp_path / "b.txt")  # m:1 with other bytes
        with pytest.raises(MigrationConflictError) as caught:
            migrate_to(other, team.store_uri, None)
        assert caught.value.details == {"kind": "model", "name": "m", "version": "1"}
        team_ws = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
        assert team_ws.store.names("model") == ["m"]  # nothing of the refused run
        team_ws.close()

        # through the CLI: a typed error, no traceback
        monkeypatch.setenv("MLWS_WORKSPACE", str(other.path))
        result = CliRunner().invoke(main, ["workspace", "migrate", "--store-uri",
                                           team.store_uri])
        assert result.exit_code != 0 and "other content" in result.output
        assert "Traceback" not in result.output

        third = Workspace.init(tmp_path / "three")
        (tmp_path / "c.txt").write_text("three")
        third.models.create("c", tmp_path / "c.txt")
        blob = next(p for p in third.artifacts.blobs.rglob("*") if p.is_file())
        blob.chmod(0o644)
        blob.write_text("damaged")
        with pytest.raises(MigrationIntegrityError):
            migrate_to(third, team.store_uri, None)
        third.close()
    finally:
        first.close()
        other.close()


def test_cli_migrate_reports_what_it_copied(team: Team, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace.init(tmp_path / "laptop")
    (tmp_path / "a.txt").write_text("a")
    ws.models.create("m", tmp_path / "a.txt")
    ws.close()
    monkeypatch.setenv("MLWS_WORKSPACE", str(tmp_path / "laptop"))
    args = ["workspace", "migrate", "--to-store-uri", team.store_uri, "--to-artifact-uri",
            team.artifact_uri, "-o", "json"]
    runner = CliRunner()
    got = json.loads(runner.invoke(main, args, catch_exceptions=False).output)
    assert (got["blobs_copied"], got["versions_copied"]) == (1, 1)
    again = json.loads(runner.invoke(main, args, catch_exceptions=False).output)
    assert (again["blobs_copied"], again["versions_copied"]) == (0, 0)
    assert again["versions_present"] == got["versions_copied"] + got["versions_present"]
