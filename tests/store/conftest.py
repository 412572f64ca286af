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
from typing import Any

import pytest

from jupyter_mlws.store.sql import SqlStore
from tests.helpers import run_server

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


def _down(record: dict[str, Any]) -> None:
    subprocess.run(record["down"], capture_output=True, timeout=120, check=False)
    for folder in record["remove"]:
        shutil.rmtree(folder, ignore_errors=True)


def _up() -> dict[str, Any]:
    """Start a server (unless ``MLWS_TEST_POSTGRES_URL`` names one) and make the migrated
    template database; the record of it."""
    record: dict[str, Any] = {"down": ["true"], "remove": []}
    given = os.environ.get("MLWS_TEST_POSTGRES_URL")
    if given:
        record["url"] = given
    else:
        # not under pytest's tmp folder: the server runs as the postgres user, who cannot enter it
        folder = Path(tempfile.mkdtemp(prefix="mlws-pg-"))
        record.update(down=["bash", str(PG_UP), "down", str(folder)], remove=[str(folder)])
        proc = subprocess.run(["bash", str(PG_UP), str(folder)], capture_output=True, text=True,
                              timeout=180)
        if proc.returncode != 0:
            _down(record)
            _unavailable(f"PostgreSQL could not be started by {PG_UP.name}: "
                         f"{proc.stderr.strip()[-500:]}")
        record["url"] = proc.stdout.strip().splitlines()[-1]
    try:
        from sqlalchemy import text

        admin = _admin_engine(record["url"])
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {TEMPLATE_DB}"))
        admin.dispose()
        locks = Path(tempfile.mkdtemp(prefix="mlws-pg-locks-"))
        SqlStore(_with_database(record["url"], TEMPLATE_DB), lock_dir=locks).close()  # copied per test
        shutil.rmtree(locks, ignore_errors=True)
    except BaseException:
        _down(record)
        raise
    return record


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running PostgreSQL server (one for every xdist worker of the run) with a
    migrated template database."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed: pip install -e '.[test]' (or '.[postgres]')")
    with run_server(tmp_path_factory, "postgres", _up, _down) as record:
        yield record["url"]


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
