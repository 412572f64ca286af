"""Compute targets: a registry of kinds (built-ins, then ``jupyter_mlws.compute`` entry points)."""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from jupyter_mlws.errors import UnknownPluginError

if TYPE_CHECKING:
    from jupyter_mlws.assets.compute import Compute
    from jupyter_mlws.compute.base import ComputeTarget
    from jupyter_mlws.compute.services import TargetServices


class ComputeRegistry:
    """Kind name -> ComputeTarget class. Unknown kinds list the known ones; a broken plugin
    warns instead of breaking the workspace."""

    def __init__(self) -> None:
        self._targets: dict[str, type[ComputeTarget]] = {}
        self._loaded = False

    def register(self, kind: str, cls: type[ComputeTarget]) -> None:
        self._targets[kind] = cls

    def _load_builtin(self, kind: str) -> None:
        """Import one built-in kind only (a local job need not load Docker's or Ray's client)."""
        if kind in self._targets:
            return
        if kind == "local":
            from jupyter_mlws.compute.local import LocalTarget

            self.register("local", LocalTarget)
        elif kind == "docker":
            from jupyter_mlws.compute.docker import DockerTarget

            self.register("docker", DockerTarget)
        elif kind == "ray":
            from jupyter_mlws.compute.ray import RayTarget

            self.register("ray", RayTarget)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for builtin in ("local", "docker", "ray"):
            self._load_builtin(builtin)
        for ep in entry_points(group="jupyter_mlws.compute"):
            if ep.name in self._targets:
                continue
            try:
                self.register(ep.name, ep.load())
            except Exception as exc:  # a plugin must not take the workspace down
                warnings.warn(f"The compute plugin {ep.name!r} failed to load: {exc}",
                              stacklevel=2)

    def get(self, kind: str) -> type[ComputeTarget]:
        self._load_builtin(kind)
        if kind not in self._targets:
            self._load()
        if kind not in self._targets:
            raise UnknownPluginError(
                f"No compute target of kind {kind!r} is available.",
                hint=f"Available kinds: {', '.join(sorted(self._targets))}.",
            )
        return self._targets[kind]

    def kinds(self) -> list[str]:
        self._load()
        return sorted(self._targets)


registry = ComputeRegistry()


def target_for(services: TargetServices, compute: Compute) -> ComputeTarget:
    """The target object that runs jobs on the compute definition ``compute``."""
    return registry.get(compute.type)(services, compute)
