"""Choosing the artifact store of a workspace, and the settings a team workspace shares.

The artifact URI comes from ``$MLWS_ARTIFACT_URI``, else ``artifact_uri`` in ``workspace.yaml``,
else the URI the team workspace recorded in its store when it was made (so a machine that joins
needs only the store URI). No URI means the local folder, as before.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from jupyter_mlws.artifacts import ArtifactStore
from jupyter_mlws.artifacts.backends import check_uri, open_backend
from jupyter_mlws.artifacts.cache import DEFAULT_CACHE_MB, ENV_CACHE_MB
from jupyter_mlws.errors import TeamWorkspaceError

ENV_ARTIFACT_URI = "MLWS_ARTIFACT_URI"
META_ARTIFACT_URI = "artifact_uri"


class MetaStore(Protocol):
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


def artifact_uri(setting: str | None, store: MetaStore) -> str | None:
    """The artifact URI in force (see the module docstring)."""
    return os.environ.get(ENV_ARTIFACT_URI) or setting or store.get_meta(META_ARTIFACT_URI)


def cache_bytes(setting_mb: int | None) -> int:
    """The local cache's bound: ``$MLWS_ARTIFACT_CACHE_MB``, the setting, else 5 GiB."""
    raw = os.environ.get(ENV_CACHE_MB)
    try:
        mb = int(raw) if raw else (setting_mb or DEFAULT_CACHE_MB)
    except ValueError:
        mb = setting_mb or DEFAULT_CACHE_MB
    return max(1, mb) << 20


def open_artifacts(
    root: Path, *, setting_uri: str | None, cache_mb: int | None, store: MetaStore
) -> ArtifactStore:
    """The workspace's artifact store: the local folder, or a remote backend with a cache."""
    uri = artifact_uri(setting_uri, store)
    if not uri:
        return ArtifactStore(root)
    # the state of unfinished S3 uploads, for a retry to resume them: machine-local, no keys
    remote = open_backend(uri, state_dir=root / "uploads")
    return ArtifactStore(root, remote=remote, cache_bytes=cache_bytes(cache_mb))


def record_team_uri(store: MetaStore, uri: str | None) -> None:
    """Write the artifact URI into a team store made now, or check it matches the recorded one."""
    if not uri:
        return
    check_uri(uri)
    recorded = store.get_meta(META_ARTIFACT_URI)
    if recorded is None:
        store.set_meta(META_ARTIFACT_URI, uri)
    elif recorded.rstrip("/") != uri.rstrip("/"):
        raise TeamWorkspaceError(
            f"This store's team workspace keeps its artifacts at {recorded!r}, not {uri!r}.",
            hint="Leave --artifact-uri out (the recorded one is used) or give the same URI.")


def _store_uri(given: str | None) -> str:
    uri = given or os.environ.get("MLWS_STORE_URI")
    if not uri:
        raise TeamWorkspaceError(
            "A team workspace needs the shared store's URL.",
            hint="Give --store-uri postgresql+psycopg://USER@HOST:PORT/DB (or set MLWS_STORE_URI).")
    if given:
        from sqlalchemy.engine import make_url

        try:
            has_password = bool(make_url(given).password)
        except Exception:  # noqa: BLE001 - the store reports a bad URL when it opens it
            has_password = False
        if has_password:
            raise TeamWorkspaceError(
                "The store URL carries a password, which would be written into workspace.yaml.",
                hint="Leave it out of the URL: PostgreSQL reads PGPASSWORD or ~/.pgpass; or set "
                "the whole URL in MLWS_STORE_URI instead of --store-uri.")
    return uri


def check_team(store_uri: str | None, uri: str | None, *, join: bool) -> str | None:
    """Before a folder is made for a team workspace: reach the store and the artifact store,
    check (``join``: take) the artifact URI the team recorded, and return the URI to use."""
    from jupyter_mlws.store import open_store

    if uri:
        check_uri(uri)
    # the migration lock of a store opened before its workspace folder exists: machine-wide
    store = open_store(_store_uri(store_uri), lock_dir=Path(tempfile.gettempdir()))
    try:
        recorded = store.get_meta(META_ARTIFACT_URI)
        if join and store.get_meta("seeded") is None:
            raise TeamWorkspaceError(
                "The store holds no workspace to join.",
                hint="Create the team workspace first with `mlws workspace init --store-uri ... "
                "--artifact-uri ...` on one machine.")
        uri = uri or recorded
        if join and not uri:
            raise TeamWorkspaceError(
                "That workspace keeps its artifacts in a folder of the machine that made it, so "
                "another machine could see its versions but not their files.",
                hint="Give the team an artifact store: --artifact-uri s3://BUCKET/PREFIX (the "
                "same on every machine).")
        if uri:
            open_backend(uri).exists("0" * 64)  # reachable, credentials accepted
            record_team_uri(store, uri)
        return uri
    finally:
        store.close()
