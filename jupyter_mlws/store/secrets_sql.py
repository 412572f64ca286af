"""Replacing a stored secret in place (used to encrypt secrets that wave 1 kept in plain text).

On SQLite the row is rewritten with ``secure_delete`` and followed by a WAL checkpoint, so the
plain text does not linger in freed pages of ``mlws.db`` or in ``mlws.db-wal``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from jupyter_mlws.errors import StoreError

_UPDATE = (
    "UPDATE asset_secrets SET secret = :secret WHERE asset_id = (SELECT id FROM asset_versions "
    "WHERE kind = :kind AND name = :name AND version = :version)"
)


def replace_secret(engine: Engine, is_sqlite: bool, kind: str, name: str, version: str,
                   secret: dict[str, Any]) -> None:
    """Store ``secret`` (already encrypted) as the secret of ``kind name:version``."""
    params = {"secret": json.dumps(secret), "kind": kind, "name": name, "version": version}
    try:
        if is_sqlite:
            _replace_sqlite(engine, params)
        else:
            with engine.begin() as conn:
                conn.execute(text(_UPDATE), params)
    except Exception as exc:  # the driver's own errors: say which secret, not its value
        raise StoreError(
            f"Could not encrypt the stored credentials of {kind} {name}:{version}: "
            f"{type(exc).__name__}.",
            hint="They stay readable; try again when the store is not busy.",
        ) from None


def _replace_sqlite(engine: Engine, params: dict[str, str]) -> None:
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_UPDATE, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
