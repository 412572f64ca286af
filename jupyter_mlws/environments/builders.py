"""The ``Builder`` protocol: what the workspace's build path needs of an environment builder.

Two builders implement it: :class:`~jupyter_mlws.environments.docker_builder.DockerBuilder`
(an image ``mlws/mlws_<hash>:latest`` in the local Docker engine) and
:class:`~jupyter_mlws.environments.venv_builder.VenvMaterializer` (a virtualenv folder named by
the hash). ``ws.environments.build(..., builder=NAME)`` picks one by name and calls it only
through this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, get_args, runtime_checkable

from jupyter_mlws.environments.builds import BuilderName, BuildResult, LockSource
from jupyter_mlws.errors import ValidationError

if TYPE_CHECKING:
    from jupyter_mlws.assets.environment import EnvironmentSpec

__all__ = ["BUILDER_NAMES", "Builder", "Log", "builder_name"]

Log = Callable[[str], None]

#: The builders a workspace knows, by name.
BUILDER_NAMES: tuple[BuilderName, ...] = get_args(BuilderName)


@runtime_checkable
class Builder(Protocol):
    """Materializes environments (content-addressed: one result per hash) and finds them again."""

    #: ``docker`` or ``venv``: the name a build is requested and recorded under.
    name: BuilderName

    def lookup(self, spec: EnvironmentSpec, *, env_hash: str | None = None) -> BuildResult | None:
        """The finished image/venv of ``spec`` (``cached=True``), or ``None``; fast, no build."""
        ...

    def build(
        self,
        spec: EnvironmentSpec,
        *,
        env_name: str = "",
        env_version: str = "",
        log: Log = print,
        refresh_base: bool = False,
        no_cache: bool = False,
        lock_for: LockSource | None = None,
    ) -> BuildResult:
        """The image/venv of ``spec``: found (``cached=True``) or built, streaming to ``log``.

        ``no_cache`` builds afresh even when a result exists (the new one replaces it;
        ``replaced_image_id`` names the old one). ``refresh_base`` rebuilds when the base (image
        or interpreter) moved since the result was made. ``env_name``/``env_version`` name the
        environment the build is for (in labels, records and the build history).
        ``lock_for(python_series)`` returns the hash's recorded lock (:mod:`.locks`): a build
        installs exactly it; with none, the build resolves and returns its lock in
        ``result.lock``.
        """
        ...

    def history(self, env_hash: str) -> list[dict[str, Any]]:
        """Every build of ``env_hash`` this machine made with this builder, oldest first."""
        ...


def builder_name(name: str) -> BuilderName:
    """``name`` when it is a known builder, else :class:`ValidationError` listing them."""
    for known in BUILDER_NAMES:
        if name == known:
            return known
    raise ValidationError(f"Unknown builder {name!r}.", hint=f"Use {' or '.join(BUILDER_NAMES)}.")
