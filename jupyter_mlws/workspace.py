"""The Workspace facade: the one object every surface (CLI, magics, REST, sidebar) calls.

A workspace is a folder (usually named ``.mlws``) holding ``workspace.yaml`` (settings), the
metadata store (``mlws.db``, SQLite, unless ``store_uri`` names another database) and the
artifact store (``artifacts/``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from jupyter_mlws import __version__
from jupyter_mlws.agent import JobAgentSettings
from jupyter_mlws.artifacts.team import open_artifacts
from jupyter_mlws.assets.base import Asset
from jupyter_mlws.assets.yaml_io import load_yaml
from jupyter_mlws.docker_engine import docker_client  # noqa: F401  (re-exported)
from jupyter_mlws.errors import (
    SecretKeyError,
    SpecError,
    ValidationError,
    WorkspaceNotFoundError,
)
from jupyter_mlws.operations.components import ComponentOperations
from jupyter_mlws.operations.computes import DEFAULT_COMPUTE, ComputeOperations
from jupyter_mlws.operations.data import DataOperations
from jupyter_mlws.operations.datastores import DEFAULT_DATASTORE, DatastoreOperations
from jupyter_mlws.operations.environments import EnvironmentOperations
from jupyter_mlws.operations.models import ModelOperations
from jupyter_mlws.store import AbstractStore, default_uri, open_store

if TYPE_CHECKING:
    from jupyter_mlws.endpoints.operations import EndpointOperations
    from jupyter_mlws.registries.operations import RegistryOperations

WORKSPACE_DIRNAME = ".mlws"
SETTINGS_FILE = "workspace.yaml"
ENV_WORKSPACE = "MLWS_WORKSPACE"
ENV_STORE_URI = "MLWS_STORE_URI"
ARTIFACTS_DIRNAME = "artifacts"


class WorkspaceSettings(BaseModel):
    """``workspace.yaml``. Paths are relative to the workspace folder unless absolute."""

    model_config = ConfigDict(extra="forbid")

    format: int = 1
    store_uri: str | None = Field(
        default=None, description="SQLAlchemy URL; none means SQLite inside the workspace."
    )
    artifacts_dir: str = ARTIFACTS_DIRNAME
    artifact_uri: str | None = Field(
        default=None, description="A shared artifact store (s3://BUCKET/PREFIX or another "
        "fsspec URL); none means the artifacts_dir folder. Credentials come from the standard "
        "AWS places, never from here.")
    artifact_cache_mb: int | None = Field(
        default=None, description="Bound of the local cache of a shared artifact store (MB).")
    envs_dir: str | None = Field(
        default=None, description="Where virtualenvs are materialized (default ~/.mlws/envs)."
    )
    registry: str | None = Field(
        default=None, description="A container registry to pull/push environment images."
    )
    job_agent: JobAgentSettings = Field(
        default_factory=JobAgentSettings,
        description="Warm kernels for notebook jobs on this machine (jupyter_mlws.agent).",
    )
    compute_map: dict[str, str] = Field(
        default_factory=dict,
        description="Cloud compute name (as in Azure ML YAML) -> local compute; '*' maps every "
        "other unknown name. Unknown names run on 'local' with a note in the job's log.",
    )
    python_fallback: Literal["exact", "nearest"] | None = Field(
        default=None,
        description="When the Python an environment asks for is not available: 'exact' (the "
        "default) refuses, 'nearest' uses the nearest one and records it. "
        "MLWS_PYTHON_FALLBACK overrides it.",
    )


def _is_workspace(path: Path) -> bool:
    return (path / SETTINGS_FILE).is_file()


def find_workspace(start: Path | None = None) -> Path:
    """Where the workspace is: ``$MLWS_WORKSPACE``, else the nearest ``.mlws/`` upwards from
    ``start`` (the current folder), else ``~/.mlws``."""
    env = os.environ.get(ENV_WORKSPACE)
    if env:
        p = Path(env).expanduser()
        if not _is_workspace(p) and _is_workspace(p / WORKSPACE_DIRNAME):
            return p / WORKSPACE_DIRNAME
        return p
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / WORKSPACE_DIRNAME
        if _is_workspace(candidate):
            return candidate
    return Path.home() / WORKSPACE_DIRNAME


def _private_sqlite_file(uri: str) -> None:
    """Make a SQLite store's file 0600 before SQLite creates it (its -wal and -shm files take
    the database's mode), and take group/world access away from one made by an older version."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return
    db = Path(uri[len("sqlite:///"):].split("?", 1)[0])
    try:
        if not db.exists():
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            st = p.stat() if p.exists() else None
            if st is not None and st.st_uid == os.getuid() and st.st_mode & 0o077:
                os.chmod(p, 0o600)
    except OSError:
        pass  # SQLite reports a folder it cannot write to in its own words


class Workspace:
    """Environments, models, data, components, datastores and computes of one workspace."""

    def __init__(self, path: Path, settings: WorkspaceSettings, store: AbstractStore) -> None:
        self.path = path
        self.settings = settings
        self.store = store
        self.artifacts = open_artifacts(
            self._abs(settings.artifacts_dir), setting_uri=settings.artifact_uri,
            cache_mb=settings.artifact_cache_mb, store=store)
        self.environments = EnvironmentOperations(self)
        self.models = ModelOperations(self)
        self.data = DataOperations(self)
        self.components = ComponentOperations(self)
        self.datastores = DatastoreOperations(self)
        self.computes = ComputeOperations(self)
        from jupyter_mlws.jobs.operations import JobOperations

        self.jobs = JobOperations(self)
        self._builders: dict[str, Any] = {}
        self._endpoints: EndpointOperations | None = None
        self._registries: RegistryOperations | None = None

    @property
    def endpoints(self) -> EndpointOperations:
        """Online endpoints (:class:`~jupyter_mlws.endpoints.operations.EndpointOperations`),
        loaded on first use: submitting a job does not import the endpoint code."""
        if self._endpoints is None:
            from jupyter_mlws.endpoints.operations import EndpointOperations

            self._endpoints = EndpointOperations(self)
        return self._endpoints

    @property
    def registries(self) -> RegistryOperations:
        """Registries known to this user (:mod:`jupyter_mlws.registries`), loaded on first use."""
        if self._registries is None:
            from jupyter_mlws.registries.operations import RegistryOperations

            self._registries = RegistryOperations(self)
        return self._registries

    # --- opening -------------------------------------------------------------------------------

    @classmethod
    def init(
        cls, path: str | Path | None = None, *, store_uri: str | None = None,
        artifact_uri: str | None = None, join: bool = False,
    ) -> Workspace:
        """Create a workspace in ``PATH/.mlws`` (or ``PATH`` itself when it is named ``.mlws``).

        ``artifact_uri`` names a shared artifact store; with ``join`` the store must already
        hold a team workspace, whose artifact URI is used (see :mod:`jupyter_mlws.artifacts.team`).
        """
        base = Path(path or Path.cwd()).expanduser().resolve()
        folder = base if base.name == WORKSPACE_DIRNAME or _is_workspace(base) else (
            base / WORKSPACE_DIRNAME
        )
        if artifact_uri or join:
            from jupyter_mlws.artifacts.team import check_team

            artifact_uri = check_team(store_uri, artifact_uri, join=join)
        return cls._create(folder, store_uri=store_uri, artifact_uri=artifact_uri)

    @classmethod
    def _create(
        cls, folder: Path, *, store_uri: str | None = None, artifact_uri: str | None = None
    ) -> Workspace:
        """Make ``folder`` a workspace (when it is not one yet) and open it."""
        folder = folder.expanduser().resolve()
        if not _is_workspace(folder):
            # private from the start: the store holds credentials (encrypted) and everything
            # the user registers
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)
            settings = WorkspaceSettings(store_uri=store_uri, artifact_uri=artifact_uri)
            artifacts = Path(settings.artifacts_dir)
            (folder / artifacts).mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = folder / f"{SETTINGS_FILE}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(
                    "# jupyter_mlws workspace settings\n"
                    + yaml.safe_dump(settings.model_dump(exclude_none=True), sort_keys=False)
                )
            os.replace(tmp, folder / SETTINGS_FILE)
        return cls._open_folder(folder)

    @classmethod
    def open(cls, path: str | Path | None = None) -> Workspace:
        """Open the workspace at ``path``, or find it as :func:`find_workspace` does.

        The default workspace (``~/.mlws`` or ``$MLWS_WORKSPACE``) is created on first use; an
        explicit ``path`` must already hold one.
        """
        if path is not None:
            p = Path(path).expanduser()
            if _is_workspace(p):
                return cls._open_folder(p.resolve())
            if _is_workspace(p / WORKSPACE_DIRNAME):
                return cls._open_folder((p / WORKSPACE_DIRNAME).resolve())
            raise WorkspaceNotFoundError(
                f"No workspace at {str(p)!r}.",
                hint=f"Create one with `mlws workspace init {p}`.",
            )
        folder = find_workspace()
        if not _is_workspace(folder):
            return cls._create(folder)
        return cls._open_folder(folder.resolve())

    @classmethod
    def _open_folder(cls, folder: Path) -> Workspace:
        settings = cls._read_settings(folder)
        uri = os.environ.get(ENV_STORE_URI) or settings.store_uri or default_uri(folder)
        _private_sqlite_file(uri)
        store = open_store(uri, lock_dir=folder)
        ws = cls(folder, settings, store)
        ws._seed()
        if store.get_meta("secrets_encrypted") != "1":
            try:  # secrets wave 1 kept in plain text; reading them later also encrypts them
                ws.datastores.encrypt_plaintext_secrets()
                store.set_meta("secrets_encrypted", "1")
            except SecretKeyError:
                pass  # no usable key now: said when the credentials are used
        ws.jobs.reap_orphans()
        return ws

    @staticmethod
    def _read_settings(folder: Path) -> WorkspaceSettings:
        from jupyter_mlws.assets.yaml_io import validate_spec

        source = str(folder / SETTINGS_FILE)
        data, index = load_yaml(source)
        return validate_spec(WorkspaceSettings, data or {}, source=source, index=index)

    def _abs(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else self.path / p

    def _seed(self) -> None:
        """Built-ins every workspace has: the local datastore and compute, curated environments."""
        from jupyter_mlws.environments.curated import catalog_digest

        key = f"{__version__}:{catalog_digest()}"
        if self.store.get_meta("seeded") == key:
            return
        self.artifacts.ensure()
        if DEFAULT_DATASTORE not in self.datastores.names():
            self.datastores.create_builtin_local(self.settings.artifacts_dir)
        self.datastores.ensure_default_blobstore()
        if DEFAULT_COMPUTE not in self.computes.names():
            self.computes.create(
                DEFAULT_COMPUTE,
                type="local",
                max_concurrent_jobs=max(1, os.cpu_count() or 1),
                description="Runs jobs as processes on this machine.",
            )
        self.environments.sync_curated()
        self.store.set_meta("seeded", key)

    def builder(self, kind: str = "docker") -> Any:
        """The environment builder of ``kind`` (``docker`` or ``venv``), made once."""
        if kind in self._builders:
            return self._builders[kind]
        cache = self.cache_dir
        if kind == "docker":
            from jupyter_mlws.environments.docker_builder import DockerBuilder

            b: Any = DockerBuilder(lock_dir=cache / "docker", registry=self.settings.registry,
                                   artifacts=self.artifacts,
                                   python_fallback=self.settings.python_fallback)
        elif kind == "venv":
            from jupyter_mlws.environments.venv_builder import VenvMaterializer

            b = VenvMaterializer(self.envs_dir, lock_dir=cache / "venv-locks",
                                 python_fallback=self.settings.python_fallback,
                                 wheelhouse=cache / "wheels")
        else:
            raise ValidationError(f"Unknown builder {kind!r}.", hint="Use docker or venv.")
        self._builders[kind] = b
        return b

    @property
    def envs_dir(self) -> Path:
        """Where virtualenvs are materialized: ``envs_dir`` setting, else ``~/.mlws/envs``."""
        configured = os.environ.get("MLWS_ENVS_DIR") or self.settings.envs_dir
        return self._abs(configured) if configured else Path.home() / ".mlws" / "envs"

    @property
    def cache_dir(self) -> Path:
        """Machine-wide build locks and records, shared by the workspaces of one user."""
        return self.envs_dir.parent / "cache"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # --- across kinds ------------------------------------------------------------------------------

    def operations(self, kind: str) -> Any:
        """The operations object for an asset kind (``model``, ``data``, ...)."""
        table = {
            "environment": self.environments,
            "model": self.models,
            "data": self.data,
            "component": self.components,
            "datastore": self.datastores,
            "compute": self.computes,
        }
        if kind not in table:
            raise ValidationError(
                f"Unknown asset kind {kind!r}.", hint=f"Use one of: {', '.join(table)}."
            )
        return table[kind]

    def create_from_file(self, path: str | Path, *, kind: str | None = None) -> Asset:
        """Register any asset from a YAML file; its kind comes from ``$schema`` (or ``kind``).

        A ``commandJob`` or ``pipelineJob`` file is submitted, and the Job is returned.
        """
        from jupyter_mlws.assets.schemas import kind_of

        p = Path(path)
        data, index = load_yaml(p)
        if not isinstance(data, dict):
            raise SpecError("expected a mapping of fields", file=str(p), line=1)
        detected = kind_of(data, source=str(p), index=index)
        if kind is not None and detected is not None and detected != kind:
            raise SpecError(
                f"this file describes a {detected}, not a {kind}",
                file=str(p),
                line=index.get(("$schema",)),
                hint=f"Use `mlws {detected} create -f {p}`.",
            )
        chosen = kind or detected
        if chosen is None:
            raise SpecError(
                "cannot tell which kind of asset this is",
                file=str(p),
                line=1,
                hint="Add a $schema line, or use `mlws <kind> create -f FILE`.",
            )
        if chosen in ("command_job", "pipeline_job"):
            return self.jobs.create_from_file(p)  # type: ignore[return-value]
        ops = self.operations(chosen)
        return ops.create_from_dict(
            data, base_dir=p.parent.resolve(), source=str(p), index=index
        )

    def describe(self, asset: Asset) -> dict[str, Any]:
        """What a `show` adds to an asset: build state for environments; for models and
        environments, the online deployments using them."""
        from jupyter_mlws.assets.environment import Environment
        from jupyter_mlws.assets.model import Model

        extra: dict[str, Any] = {}
        if isinstance(asset, Model):  # lineage: where the model is deployed
            extra["deployments"] = self.endpoints.deployments_using(model=asset.ref)
        if isinstance(asset, Environment):  # lineage: the deployments built from it
            extra["deployments"] = self.endpoints.deployments_using(env_hash=asset.env_hash)
        if isinstance(asset, Environment):
            for kind in ("docker", "venv"):
                record = self.store.get_build(asset.env_hash, kind)
                if record is None:
                    extra[f"{kind}_build"] = "not built in this workspace"
                    continue
                result = record.get("result") or {}
                state = {"status": record["status"], "image": result.get("image"),
                         "image_id": result.get("image_id"), "digest": result.get("digest"),
                         "size": result.get("size"), "build_seconds": result.get("build_seconds"),
                         "finished_at": str(record.get("finished_at")),
                         "resolved_packages": result.get("resolved_packages"),
                         "notes": result.get("notes") or None}
                if record.get("error"):
                    state["error"] = record["error"].splitlines()[0]
                if kind == "docker" and record["status"] == "succeeded":
                    note = self.environments.base_note(asset)  # h-envtime: patched bases
                    if note:
                        state["base_changed"] = note
                extra[f"{kind}_build"] = {k: v for k, v in state.items() if v is not None}
        return extra

    def info(self) -> dict[str, Any]:
        store_uri = getattr(self.store, "_safe_uri", lambda: "?")()
        return {
            "path": str(self.path),
            "store": store_uri,
            "artifacts": self.artifacts.location,
            "version": __version__,
            "counts": {
                kind: self.operations(kind).count()
                for kind in ("environment", "model", "data", "component", "datastore", "compute")
            },
        }

    def gc(self, *, older_than_s: float = 3600.0) -> list[str]:
        """Delete artifact blobs that no version or job refers to and no running registration
        uses (left by a registration that was killed), last used ``older_than_s`` ago or more."""
        return self.artifacts.garbage_collect(
            lambda: self.artifacts.referenced_by(self.store), older_than_s=older_than_s
        )
