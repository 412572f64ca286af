"""The workspace's side of :class:`jupyter_mlws.compute.services.TargetServices`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_mlws.compute.services import JobRecords, Log

if TYPE_CHECKING:
    from jupyter_mlws.artifacts import ArtifactStore
    from jupyter_mlws.assets.environment import Environment
    from jupyter_mlws.environments.builds import BuildResult
    from jupyter_mlws.workspace import Workspace


class WorkspaceTargetServices:
    """Gives compute targets the few parts of a Workspace they use."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @property
    def jobs(self) -> JobRecords:
        return self._ws.store

    @property
    def workspace_path(self) -> Path:
        return self._ws.path

    @property
    def artifact_root(self) -> Path:
        return self._ws.artifacts.root

    @property
    def artifacts(self) -> ArtifactStore:  # h-teamray: Ray jobs through a remote store
        return self._ws.artifacts

    @property
    def envs_dir(self) -> Path:
        return self._ws.envs_dir

    @property
    def cache_dir(self) -> Path:
        return self._ws.cache_dir

    def environment(self, ref: str) -> Environment:
        return self._ws.environments.get(ref)

    def lookup_environment(self, env: Environment, builder: str) -> BuildResult | None:
        return self._ws.environments.lookup(env, builder)

    def build_environment(self, env: Environment, builder: str,
                          log: Log | None = None) -> BuildResult:
        return self._ws.environments.build(env, builder=builder, log=log)
