"""Finding, creating and migrating workspaces."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import WorkspaceNotFoundError
from jupyter_mlws.store.sql import HEAD_REVISION
from jupyter_mlws.workspace import find_workspace


def test_init_creates_store_and_artifacts(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    assert ws.path == (tmp_path / ".mlws").resolve()
    assert (ws.path / "workspace.yaml").is_file()
    db = sqlite3.connect(ws.path / "mlws.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("select version_num from alembic_version").fetchone()[0] == HEAD_REVISION
    assert ws.artifacts.blobs.is_dir()
    assert ws.computes.get("local").type == "local"
    assert ws.datastores.get("local").type == "local"
    assert Workspace.init(tmp_path).path == ws.path  # idempotent


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    Workspace.init(project)
    monkeypatch.chdir(deep)
    assert find_workspace() == (project / ".mlws").resolve()  # nearest .mlws walking up
    assert Workspace.open().path == (project / ".mlws").resolve()
    elsewhere = tmp_path / "env-ws"
    monkeypatch.setenv("MLWS_WORKSPACE", str(elsewhere))
    assert find_workspace() == elsewhere  # the variable wins
    ws = Workspace.open()  # created on first use
    assert ws.path == elsewhere.resolve() and (elsewhere / "workspace.yaml").is_file()
    monkeypatch.delenv("MLWS_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    home_ws = Workspace.open()
    assert home_ws.path == (Path.home() / ".mlws").resolve()


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceNotFoundError, match="mlws workspace init"):
        Workspace.open(tmp_path / "nothing")
    Workspace.init(tmp_path / "p")
    assert Workspace.open(tmp_path / "p").path.name == ".mlws"  # the project folder works too


def test_store_uri_setting_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "shared.db"
    ws = Workspace.init(tmp_path / "p", store_uri=f"sqlite:///{other}")
    ws.models.names()
    assert other.exists() and not (ws.path / "mlws.db").exists()
    third = tmp_path / "third.db"
    monkeypatch.setenv("MLWS_STORE_URI", f"sqlite:///{third}")
    Workspace.open(tmp_path / "p")
    assert third.exists()


def test_bad_settings_file_points_at_the_line(tmp_path: Path) -> None:
    from jupyter_mlws.errors import SpecError

    ws = Workspace.init(tmp_path)
    (ws.path / "workspace.yaml").write_text("format: 1\nstore_url: nope\n")
    with pytest.raises(SpecError, match=r"workspace.yaml:2"):
        Workspace.open(tmp_path)


def test_migrations_upgrade_an_empty_database_only_once(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    db = ws.path / "mlws.db"
    tables = {r[0] for r in sqlite3.connect(db).execute(
        "select name from sqlite_master where type='table'")}
    assert {"asset_versions", "asset_names", "asset_tags", "asset_secrets",
            "workspace_meta", "alembic_version"} <= tables
    ws.close()
    reopened = Workspace.open(tmp_path)
    assert reopened.environments.get("MLWS-python-3.11-minimal").version == "1"


def test_gc_removes_only_unreferenced_blobs(ws: Workspace, files: Path) -> None:
    m = ws.models.create("m", files / "model_dir")
    orphan = ws.artifacts.put_bytes(b"left behind by a killed process")
    removed = ws.gc(older_than_s=0)
    assert removed == [orphan]
    assert ws.models.download("m", dest=files.parent / "dl").is_dir()
    assert m.sha256 and ws.artifacts.has(m.sha256)


def test_an_older_database_is_upgraded_on_open_and_keeps_its_data(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from jupyter_mlws.store.migrate import upgrade

    folder = tmp_path / ".mlws"
    folder.mkdir()
    (folder / "workspace.yaml").write_text("format: 1\n")
    engine = create_engine(f"sqlite:///{folder / 'mlws.db'}")
    upgrade(engine, "0001")  # a workspace made by the first release
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into asset_names values ('model', 'old', 2, 2, '2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "insert into asset_versions (kind, name, version, seq, content_hash, spec, archived,"
            " hidden, curated, created_at) values ('model', 'old', '1', 1, 'h', '{}', 0, 0, 0,"
            " '2026-01-01 00:00:00')")
    engine.dispose()
    ws = Workspace.open(tmp_path)
    db = sqlite3.connect(folder / "mlws.db")
    assert db.execute("select version_num from alembic_version").fetchone()[0] == HEAD_REVISION
    assert "environment_builds" in {r[0] for r in db.execute(
        "select name from sqlite_master where type='table'")}
    assert ws.models.get("old").version == "1"
