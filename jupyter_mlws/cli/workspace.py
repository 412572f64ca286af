"""``mlws workspace ...`` and ``mlws schema``."""

from __future__ import annotations

from pathlib import Path

import click

from jupyter_mlws.cli._common import OUTPUT, WORKSPACE, open_workspace
from jupyter_mlws.cli._format import emit


@click.group()
def workspace() -> None:
    """Create and inspect workspaces."""


@workspace.command("init")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--store-uri", help="SQLAlchemy URL of a shared database (default: SQLite inside).")
@click.option("--artifact-uri", help="Shared artifact store: s3://BUCKET/PREFIX or another fsspec "
              "URL (default: the artifacts folder inside). S3 keys come from the AWS variables "
              "or ~/.aws, never from here.")
@OUTPUT
def workspace_init(
    path: str | None, store_uri: str | None, artifact_uri: str | None, output: str
) -> None:
    """Create a workspace in PATH/.mlws (default: the current folder)."""
    from jupyter_mlws.workspace import Workspace

    ws = Workspace.init(path, store_uri=store_uri, artifact_uri=artifact_uri)
    info = ws.info()
    emit(info, output, table=lambda: click.echo(f"Workspace ready at {info['path']}"))


@workspace.command("join")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--store-uri", help="SQLAlchemy URL of the team's database (or MLWS_STORE_URI).")
@click.option("--artifact-uri", help="The team's artifact store (default: the one it recorded).")
@OUTPUT
def workspace_join(
    path: str | None, store_uri: str | None, artifact_uri: str | None, output: str
) -> None:
    """Attach PATH/.mlws on this machine to an existing team workspace."""
    from jupyter_mlws.workspace import Workspace

    ws = Workspace.init(path, store_uri=store_uri, artifact_uri=artifact_uri, join=True)
    info = ws.info()
    emit(info, output, table=lambda: click.echo(
        f"Joined the team workspace: {info['path']} (store {info['store']}, "
        f"artifacts {info['artifacts']})"))


@workspace.command("migrate")
@click.option("--to-store-uri", "--store-uri", "store_uri",
              help="SQLAlchemy URL of the team's database (or MLWS_STORE_URI).")
@click.option("--to-artifact-uri", "--artifact-uri", "artifact_uri",
              help="The team's artifact store (default: the one it recorded).")
@WORKSPACE
@OUTPUT
def workspace_migrate(store_uri: str | None, artifact_uri: str | None,
                      workspace_path: str | None, output: str) -> None:
    """Copy this (embedded) workspace into a team workspace: blobs verified by sha256, versions,
    finished jobs. Re-running copies what is missing; the source is left as it is."""
    from jupyter_mlws.team.migrate import migrate_to

    report = migrate_to(open_workspace(workspace_path), store_uri, artifact_uri).public_dict()
    emit(report, output, table=lambda: click.echo(
        f"Copied {report['blobs_copied']} blobs, {report['versions_copied']} versions, "
        f"{report['jobs_copied']} jobs (already there: {report['blobs_present']} blobs, "
        f"{report['versions_present']} versions, {report['jobs_present']} jobs)"
        + "".join(f"\nleft out: {x}" for x in report["left_out"])))


@workspace.command("show")
@WORKSPACE
@OUTPUT
def workspace_show(workspace_path: str | None, output: str) -> None:
    """Where the workspace is and what it holds."""
    info = open_workspace(workspace_path).info()

    def table() -> None:
        for key in ("path", "store", "artifacts", "version"):
            click.echo(f"{key + ':':<11}{info[key]}")
        click.echo("assets:    " + ", ".join(f"{k}={v}" for k, v in info["counts"].items()))

    emit(info, output, table=table)


@workspace.command("gc")
@click.option("--older-than", default=3600.0, show_default=True,
              help="Only delete unreferenced blobs older than this many seconds.")
@WORKSPACE
def workspace_gc(older_than: float, workspace_path: str | None) -> None:
    """Delete artifact blobs that no version refers to (left by an interrupted registration)."""
    removed = open_workspace(workspace_path).gc(older_than_s=older_than)
    click.echo(f"Removed {len(removed)} unreferenced blob(s).")


@click.command("schema")
@click.option("--out", type=click.Path(file_okay=False), default="schemas", show_default=True)
def schema_cmd(out: str) -> None:
    """Write the JSON Schemas of every YAML spec (for editors' $schema support)."""
    from jupyter_mlws.assets.schemas import write_schemas

    for p in write_schemas(Path(out)):
        click.echo(str(p))
