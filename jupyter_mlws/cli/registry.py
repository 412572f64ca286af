"""``mlws registry ...`` (catalogues shared across workspaces) and the ``share`` commands of
``mlws env|model|component``."""

from __future__ import annotations

from typing import Any

import click

from jupyter_mlws.cli._common import OUTPUT, WORKSPACE, open_workspace
from jupyter_mlws.cli._format import emit, print_table


@click.group("registry")
def registry_group() -> None:
    """Registries: environments, models and components shared across workspaces.

    A registry is a folder listed in this user's registries file; `azureml` is built in
    (local equivalents of Azure's curated environments). Use a registry's assets as
    azureml://registries/NAME/environments|models|components/ASSET/versions/V (or
    .../labels/latest) from any workspace.
    """


@registry_group.command("create")
@click.argument("name")
@click.option("--path", "path", required=True,
              help="The registry's folder (made when missing; an existing registry is attached).")
@click.option("-d", "--description")
@WORKSPACE
@OUTPUT
def registry_create(name: str, path: str, description: str | None, workspace_path: str | None,
                    output: str) -> None:
    """Make a folder a registry (or attach one) and add it to this user's registries."""
    info = open_workspace(workspace_path).registries.create(name, path, description=description)

    def table() -> None:
        verb = "Created" if info["created"] else "Attached"
        click.echo(f"{verb} the registry {info['name']} at {info['location']}")

    emit(info, output, table=table)


@registry_group.command("list")
@WORKSPACE
@OUTPUT
def registry_list(workspace_path: str | None, output: str) -> None:
    """The built-in registry and this user's."""
    rows = open_workspace(workspace_path).registries.list()
    emit(rows, output, table=lambda: print_table(rows, [
        ("name", "name"), ("environment", "environments"), ("model", "models"),
        ("component", "components"), ("location", "location")]))


@registry_group.command("show")
@click.argument("name")
@WORKSPACE
@OUTPUT
def registry_show(name: str, workspace_path: str | None, output: str) -> None:
    """A registry and what it holds (for `azureml`: the curated environments table)."""
    data = open_workspace(workspace_path).registries.show(name)

    def table() -> None:
        for key in ("name", "location", "description"):
            if data.get(key):
                click.echo(f"{key + ':':<13}{data[key]}")
        if data.get("curated"):
            print_table([{**r, "aka": ", ".join(r["aliases"]),
                          "contents": "refused: GPU only" if r["refused"] else r["description"]}
                         for r in data["curated"]],
                        [("name", "name"), ("aka", "also"), ("contents", "contents")])
            return
        print_table(data["assets"], [("kind", "kind"), ("name", "name"),
                                     ("version", "version"), ("shared_at", "shared"),
                                     ("uri", "reference")])

    emit(data, output, table=table)


@registry_group.command("delete")
@click.argument("name")
@click.option("--purge", is_flag=True,
              help="Delete the registry's folder too (other users lose it).")
@WORKSPACE
@OUTPUT
def registry_delete(name: str, purge: bool, workspace_path: str | None, output: str) -> None:
    """Remove a registry from this user's list (its folder is kept unless --purge)."""
    info = open_workspace(workspace_path).registries.delete(name, purge=purge)
    kept = "deleted" if purge else "kept"
    emit(info, output, table=lambda: click.echo(
        f"Removed the registry {name} from your list (its folder {info['location']} is {kept})"))


def share_command(kind: str) -> click.Command:
    """``mlws env|model|component share NAME:VERSION --registry R``."""

    @click.command("share")
    @click.argument("ref")
    @click.option("--registry", "-r", "registry", required=True, help="The registry's name.")
    @click.option("--share-with-name", "as_name", help="The name in the registry (default: "
                  "the same).")
    @click.option("--share-with-version", "as_version", help="The version in the registry "
                  "(default: the same).")
    @WORKSPACE
    @OUTPUT
    def share(ref: str, registry: str, as_name: str | None, as_version: str | None,
              workspace_path: str | None, output: str) -> None:
        """Copy NAME:VERSION (NAME: the latest) into a registry; sharing the same content
        again changes nothing."""
        entry = open_workspace(workspace_path).registries.share(
            kind, ref, registry, name=as_name, version=as_version)
        data: dict[str, Any] = {"uri": entry.uri, **entry.to_dict()}
        emit(data, output, table=lambda: click.echo(f"Shared as {entry.uri}"))

    share.help = f"Copy a {kind} version into a registry (idempotent by content)."
    return share
