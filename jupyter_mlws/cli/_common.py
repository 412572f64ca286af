"""Options and small helpers every command group of ``mlws`` uses."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from jupyter_mlws.errors import MlwsError

OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table",
    show_default=True, help="Output format.",
)
WORKSPACE = click.option(
    "-w", "--workspace", "workspace_path", type=click.Path(file_okay=False), default=None,
    help="Workspace folder (default: $MLWS_WORKSPACE, else the nearest .mlws/, else ~/.mlws).",
)


def open_workspace(workspace_path: str | None) -> Any:
    """The workspace at ``workspace_path``, else the one found from here."""
    from jupyter_mlws.workspace import Workspace

    return Workspace.open(workspace_path) if workspace_path else Workspace.open()


def parse_tags(pairs: Sequence[str], option: str = "--tag") -> dict[str, str]:
    """``key=value`` (or a bare ``key``) items -> a mapping of strings."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            raise click.BadParameter(f"{pair!r} must look like key=value", param_hint=option)
        tags[key] = value if sep else ""
    return tags


def split_ref(ref: str, version: str | None) -> tuple[str, str | None]:
    """``NAME``, ``NAME:VERSION`` or ``NAME@latest`` (and ``-v``) -> (name, version); a
    registry reference (``azureml://registries/...``) is kept whole."""
    if "://" in ref:
        return ref, version
    for prefix in ("azureml:", "mlws:"):
        ref = ref.removeprefix(prefix)
    if version is None and ":" in ref:
        name, _, v = ref.partition(":")
        return name, v
    if ref.endswith("@latest"):
        return ref[: -len("@latest")], version
    return ref, version


def with_options(options: Iterable[Callable[[Any], Any]], f: Any) -> Any:
    """Apply click ``options`` to the command ``f`` (first one first in ``--help``)."""
    for opt in reversed(list(options)):
        f = opt(f)
    return f


class MlwsGroup(click.Group):
    """Turns :class:`MlwsError` into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlwsError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
