"""The store's contract tests run over every backend: SQLite in a temp folder and a real
PostgreSQL server that ``scripts/postgres-up.sh`` starts for the session (and stops after).

Without PostgreSQL (or its driver) the ``postgres`` params fail when ``CI`` is set and skip
otherwise. ``MLWS_TEST_POSTGRES_URL`` names a server to use instead of starting one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_mlws.store.sql import SqlStore

ROOT = Path(__file__).resolve().parents[2]
PG_UP = ROOT / "scripts" / "postgres-up.sh"
TEMPLATE_DB = "mlws_template"


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _admin_engine(url: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    return create_engine(url, isolation_level="AUTOCOMMIT")


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a running PostgreSQL server with a migrated template database."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed: pip install -e '.[test]' (or '.[postgres]')")
    given = os.environ.get("MLWS_TEST_POSTGRES_URL")
    folder: Path | None = None
    if given:
        url = given
    else:
        # not under pytest's tmp folder: the server runs as the postgres user, who cannot enter it
        folder = Path(tempfile.mkdtemp(prefix="mlws-pg-"))
        proc = subprocess.run(["bash", str(PG_UP), str(folder)], capture_output=True, text=True,
                              timeout=180)
        if proc.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            _unavailable(f"PostgreSQL could not be started by {PG_UP.name}: "
                         f"{proc.stderr.strip()[-500:]}")
        url = proc.stdout.strip().splitlines()[-1]
    try:
        from sqlalchemy import text

        admin = _admin_engine(url)
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {TEMPLATE_DB}"))
        admin.dispose()
        locks = Path(tempfile.mkdtemp(prefix="mlws-pg-locks-"))
        SqlStore(_with_database(url, TEMPLATE_DB), lock_dir=locks).close()  # copied per test
        shutil.rmtree(locks, ignore_errors=True)
        yield url
    finally:
        if folder is not None:
            subprocess.run(["bash", str(PG_UP), "down", str(folder)], capture_output=True,
                           timeout=120)
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mlws.db'}"
        return
    from sqlalchemy import text

    url: str = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = _admin_engine(url)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"))
    try:
        yield _with_database(url, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def store(store_uri: str, tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(store_uri, lock_dir=tmp_path)
    yield s
    s.close()
