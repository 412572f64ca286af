"""The metadata store: pick an implementation by URI (no URI: SQLite inside the workspace)."""

from __future__ import annotations

from pathlib import Path

from jupyter_mlws.store.base import AbstractStore, NewVersion

__all__ = ["AbstractStore", "NewVersion", "open_store", "default_uri"]


def default_uri(workspace_dir: Path) -> str:
    return f"sqlite:///{(workspace_dir / 'mlws.db').resolve()}"


def open_store(uri: str, *, lock_dir: Path | None = None) -> AbstractStore:
    """Open (and migrate on first use) the store at ``uri``."""
    from jupyter_mlws.store.sql import SqlStore

    return SqlStore(uri, lock_dir=lock_dir)
