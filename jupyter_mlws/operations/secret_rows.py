"""Replacing a stored secret in place (used to encrypt secrets that wave 1 kept in plain text).

The store's own ``put_secret`` is used when it has one. Otherwise the row of the store's
``asset_secrets`` table is rewritten here; on SQLite with ``secure_delete`` and a WAL checkpoint,
so the plain text does not linger in freed pages of ``mlws.db`` or in ``mlws.db-wal``.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_mlws.errors import StoreError

_UPDATE = (
    "UPDATE asset_secrets SET secret = {p}secret WHERE asset_id = (SELECT id FROM asset_versions "
    "WHERE kind = {p}kind AND name = {p}name AND version = {p}version)"
)


def replace_secret(store: Any, kind: str, name: str, version: str, secret: dict[str, Any]) -> None:
    """Store ``secret`` (already encrypted) as the secret of ``kind name:version``."""
    put = getattr(store, "put_secret", None)
    if put is not None:
        put(kind, name, version, secret)
        return
    params = {"secret": json.dumps(secret), "kind": kind, "name": name, "version": version}
    try:
        if getattr(store, "is_sqlite", False):
            _replace_sqlite(store, params)
        else:
            from sqlalchemy import text

            with store.write_engine.begin() as conn:
                conn.execute(text(_UPDATE.format(p=":")), params)
    except Exception as exc:  # the driver's own errors: say which secret, not its value
        raise StoreError(
            f"Could not encrypt the stored credentials of {kind} {name}:{version}: "
            f"{type(exc).__name__}.",
            hint="They stay readable; try again when the store is not busy.",
        ) from None


def _replace_sqlite(store: Any, params: dict[str, str]) -> None:
    raw = store.write_engine.raw_connection()
    try:
        conn = raw.driver_connection
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_UPDATE.format(p=":"), params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
