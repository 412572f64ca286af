"""The commands every asset kind shares, and ``mlws model|data|component|compute ...``.

Also ``mlws create -f FILE`` (any kind, told by the file's ``$schema``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from jupyter_mlws.assets.base import Asset
from jupyter_mlws.cli._common import (
    OUTPUT,
    WORKSPACE,
    open_workspace,
    parse_tags,
    split_ref,
    with_options,
)
from jupyter_mlws.cli._format import age, emit, human_size, print_table
from jupyter_mlws.cli.registry import share_command

# --- per-kind table columns -----------------------------------------------------------------------

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "environment": [("name", "name"), ("version", "version"), ("environment_kind", "kind"),
                    ("hash12", "hash"), ("created", "created"), ("tags_text", "tags")],
    "model": [("name", "name"), ("version", "version"), ("type", "type"),
              ("size_text", "size"), ("sha12", "sha256"), ("created", "created"),
              ("tags_text", "tags")],
    "data": [("name", "name"), ("version", "version"), ("type", "type"), ("where", "where"),
             ("created", "created"), ("tags_text", "tags")],
    "component": [("name", "name"), ("version", "version"), ("environment", "environment"),
                  ("created", "created"), ("tags_text", "tags")],
    "datastore": [("name", "name"), ("version", "version"), ("type", "type"),
                  ("location", "location"), ("created", "created")],
    "compute": [("name", "name"), ("version", "version"), ("type", "type"),
                ("max_concurrent_jobs", "max jobs"), ("created", "created")],
}


def _row(asset: Asset) -> dict[str, Any]:
    d = asset.public_dict()
    d["created"] = age(asset.created_at)
    d["tags_text"] = ",".join(f"{k}={v}" if v else k for k, v in sorted(asset.tags.items()))
    if asset.archived:
        d["version"] = f"{asset.version} (archived)"
    if "hash" in d:
        d["hash12"] = d["hash"][:12]
    if d.get("sha256"):
        d["sha12"] = str(d["sha256"])[:12]
    d["size_text"] = human_size(d.get("size"))
    if asset.kind == "data":
        d["where"] = "stored " + human_size(d.get("size")) if d.get("stored") else d.get("uri")
    return d


def _show(asset: Asset, output: str, extra: dict[str, Any] | None = None) -> None:
    data = asset.public_dict()
    if extra:
        data.update(extra)
    if output != "table":
        emit(data, output)
        return
    skip = {"spec", "hash12", "sha12", "size_text", "tags_text"}
    for key, value in data.items():
        if key in skip or value in (None, "", {}, []):
            continue
        if key == "created_at":
            value = age(value)
        if key == "size":
            value = f"{human_size(value)} ({value} bytes)"
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        click.echo(f"{key + ':':<18}{value}")
    click.echo("spec:")
    click.echo("  " + yaml.safe_dump(data["spec"], sort_keys=True).replace("\n", "\n  ").rstrip())


def _cluster_fields(item: Asset) -> dict[str, Any]:
    """For a Ray compute: the cluster's nodes, resources and health (the token never shows)."""
    if item.kind != "compute" or item.spec.get("type") != "ray":
        return {}
    from jupyter_mlws.compute.ray import describe_compute

    return describe_compute(item)


def kind_group(kind: str, name: str, help_text: str) -> click.Group:
    """The commands every asset kind has: list, show, archive, restore, update."""
    group = click.Group(name=name, help=help_text)

    @group.command("list")
    @click.option("-n", "--name", "asset_name", help="List the versions of this name.")
    @click.option("--tag", "tags", multiple=True, help="Filter by tag (key or key=value).")
    @click.option("--include-archived", is_flag=True, help="Include archived versions.")
    @click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
    @click.option("--offset", type=click.IntRange(min=0), default=0)
    @click.option("--created-by", "created_by", metavar="ME|USER",
                  help="Only versions this user registered (ME: yours; USER matches USER@any "
                  "host); without --name, names whose latest version is theirs.")
    @WORKSPACE
    @OUTPUT
    def list_cmd(asset_name: str | None, tags: Sequence[str], include_archived: bool,
                 limit: int | None, offset: int, created_by: str | None,
                 workspace_path: str | None, output: str, **extra: Any) -> None:
        """Without --name: the latest version of each name. With it: every version."""
        tag_filter: dict[str, str | None] = {}
        for t in tags:
            key, sep, value = t.partition("=")
            tag_filter[key] = value if sep else None
        ops = open_workspace(workspace_path).operations(kind)
        items = ops.list(asset_name, tags=tag_filter or None, include_archived=include_archived,
                         limit=limit, offset=offset, created_by=created_by, **extra)
        emit([i.public_dict() for i in items], output,
             table=lambda: print_table([_row(i) for i in items], COLUMNS[kind]))

    if kind == "environment":
        list_cmd = click.option("--include-hidden", "include_hidden", is_flag=True,
                                help="Include anonymous environments.")(list_cmd)

    @group.command("show")
    @click.argument("ref")
    @click.option("-v", "--version", help="Version (default: latest). NAME:VERSION works too.")
    @WORKSPACE
    @OUTPUT
    def show_cmd(ref: str, version: str | None, workspace_path: str | None, output: str) -> None:
        """Show one version (NAME, NAME:VERSION or NAME@latest)."""
        asset_name, v = split_ref(ref, version)
        ws = open_workspace(workspace_path)
        item = ws.operations(kind).get(asset_name, v)
        _show(item, output, {**ws.describe(item), **_cluster_fields(item)})

    for verb, flag in (("archive", True), ("restore", False)):

        def make(verb: str = verb, flag: bool = flag) -> None:
            @group.command(verb, help=f"{verb.capitalize()} one version, or every version.")
            @click.argument("ref")
            @click.option("-v", "--version", help="Only this version (default: all versions).")
            @WORKSPACE
            def cmd(ref: str, version: str | None, workspace_path: str | None) -> None:
                asset_name, v = split_ref(ref, version)
                ops = open_workspace(workspace_path).operations(kind)
                n = ops.archive(asset_name, v) if flag else ops.restore(asset_name, v)
                click.echo(f"{verb.capitalize()}d {n} version(s) of {kind} {asset_name}.")

        make()

    @group.command("update")
    @click.argument("ref")
    @click.option("-v", "--version")
    @click.option("--description")
    @click.option("--tag", "tags", multiple=True, help="Set a tag key=value.")
    @click.option("--remove-tag", "remove", multiple=True, help="Remove a tag.")
    @WORKSPACE
    @OUTPUT
    def update_cmd(ref: str, version: str | None, description: str | None, tags: Sequence[str],
                   remove: Sequence[str], workspace_path: str | None, output: str) -> None:
        """Change the description or tags of a version (its content never changes)."""
        asset_name, v = split_ref(ref, version)
        ops = open_workspace(workspace_path).operations(kind)
        v = v or ops.get(asset_name).version
        _show(ops.update(asset_name, v, description=description, tags=parse_tags(tags),
                         remove_tags=list(remove)), output)

    return group


def created(asset: Asset, output: str) -> None:
    if output == "table":
        click.echo(f"Registered {asset.kind} {asset.name}:{asset.version}")
        extra = asset.extra_fields()
        for key in ("hash", "image", "sha256", "size", "uri"):
            if extra.get(key) is not None:
                click.echo(f"  {key}: {extra[key]}")
    else:
        emit(asset.public_dict(), output)


FILE_OPT = click.option("-f", "--file", "file", type=click.Path(exists=True, dir_okay=False),
                        help="A YAML spec (Azure ML CLI v2 shapes accepted).")
COMMON_CREATE = [
    click.option("--version", "version", help="Version (default: the next integer)."),
    click.option("--description"),
    click.option("--tag", "tags", multiple=True, help="A tag key=value (repeatable)."),
]


def create_from_file_or(kind: str, file: str | None, workspace_path: str | None,
                         build: Callable[[Any], Asset], need: dict[str, Any]) -> Asset:
    ws = open_workspace(workspace_path)
    if file:
        return ws.create_from_file(file, kind=kind)
    missing = [f"--{k.replace('_', '-')}" for k, v in need.items() if v is None]
    if missing:
        raise click.UsageError(f"give -f FILE, or {' and '.join(missing)}")
    return build(ws)


# models ---------------------------------------------------------------------------------------------
model_group = kind_group("model", "model", "Models: versioned files and folders.")
model_group.add_command(share_command("model"))


@model_group.command("create")
@FILE_OPT
@click.option("-n", "--name")
@click.option("-p", "--path", help="A local file or folder, or a job output mlws://jobs/<id>/outputs/<name>.")
@click.option("-t", "--type", "model_type", default="custom_model", show_default=True,
              type=click.Choice(["custom_model", "mlflow_model", "triton_model"]))
@WORKSPACE
@OUTPUT
def model_create(file: str | None, name: str | None, path: str | None, model_type: str,
                 version: str | None, description: str | None, tags: Sequence[str],
                 workspace_path: str | None, output: str) -> None:
    """Register a model from a YAML file or a local file/folder."""
    created(create_from_file_or(
        "model", file, workspace_path,
        lambda ws: ws.models.create(name, path, type=model_type, version=version,
                                    description=description, tags=parse_tags(tags)),
        {"name": name, "path": path}), output)


model_create = with_options(COMMON_CREATE, model_create)


def _download_cmd(group: click.Group, kind: str) -> None:
    @group.command("download")
    @click.argument("ref")
    @click.option("-v", "--version")
    @click.option("-d", "--dest", type=click.Path(file_okay=False), default=".",
                  show_default=True, help="Folder to write into.")
    @WORKSPACE
    def download(ref: str, version: str | None, dest: str, workspace_path: str | None) -> None:
        """Write a version's files into DEST."""
        asset_name, v = split_ref(ref, version)
        out = open_workspace(workspace_path).operations(kind).download(asset_name, v, dest)
        click.echo(str(out))


_download_cmd(model_group, "model")

# data ------------------------------------------------------------------------------------------------
data_group = kind_group("data", "data", "Data: copied files and folders, or references.")


@data_group.command("create")
@FILE_OPT
@click.option("-n", "--name")
@click.option("-p", "--path", help="Local path (copied in), or a URI kept as a reference.")
@click.option("-t", "--type", "data_type", default="uri_folder", show_default=True,
              type=click.Choice(["uri_file", "uri_folder", "mltable"]))
@WORKSPACE
@OUTPUT
def data_create(file: str | None, name: str | None, path: str | None, data_type: str,
                version: str | None, description: str | None, tags: Sequence[str],
                workspace_path: str | None, output: str) -> None:
    """Register data from a YAML file, a local path or a URI."""
    created(create_from_file_or(
        "data", file, workspace_path,
        lambda ws: ws.data.create(name, path, type=data_type, version=version,
                                  description=description, tags=parse_tags(tags)),
        {"name": name, "path": path}), output)


data_create = with_options(COMMON_CREATE, data_create)
_download_cmd(data_group, "data")

# components ---------------------------------------------------------------------------------------
component_group = kind_group("component", "component", "Command components.")
component_group.add_command(share_command("component"))


@component_group.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False))
@WORKSPACE
@OUTPUT
def component_create(file: str, workspace_path: str | None, output: str) -> None:
    """Register a command component from its YAML file."""
    created(open_workspace(workspace_path).create_from_file(file, kind="component"), output)


# computes ------------------------------------------------------------------------------------------
compute_group = kind_group("compute", "compute", "Compute definitions.")


@compute_group.command("create")
@FILE_OPT
@click.option("-n", "--name")
@click.option("--type", "--kind", "compute_type", default="local", show_default=True,
              help="local, docker, ray, or a plugin's kind.")
@click.option("--max-concurrent", "max_concurrent", type=click.IntRange(min=1), default=2,
              show_default=True)
@click.option("--cpus", type=float)
@click.option("--memory")
@click.option("--gpus", help="A number of GPUs, or 'all'.")
@click.option("--address", help="Ray: the dashboard address, e.g. http://HEAD:8265.")
@click.option("--resources", help='Ray: resources a job asks for, as JSON, e.g. \'{"GPU": 1}\'.')
@click.option("--shared-path", "shared_paths", multiple=True,
              help="Ray: a folder mounted at the same place on every node (repeatable).")
@click.option("--token-env", help="Ray: the environment variable that holds the auth token.")
@WORKSPACE
@OUTPUT
def compute_create(file: str | None, name: str | None, compute_type: str, max_concurrent: int,
                   cpus: float | None, memory: str | None, gpus: str | None,
                   address: str | None, resources: str | None, shared_paths: Sequence[str],
                   token_env: str | None, version: str | None, description: str | None,
                   tags: Sequence[str], workspace_path: str | None, output: str) -> None:
    """Register a compute definition from a YAML file or options."""
    settings: dict[str, Any] = {k: v for k, v in {
        "cpus": cpus, "memory": memory, "address": address,
        "gpus": int(gpus) if gpus and gpus.isdigit() else gpus,
        "shared_paths": [str(Path(p).resolve()) for p in shared_paths] or None,
        "token_env": token_env}.items() if v is not None}
    if resources:
        try:
            settings["resources"] = json.loads(resources)
        except ValueError:
            raise click.BadParameter("must be a JSON object, e.g. '{\"GPU\": 1}'",
                                     param_hint="--resources") from None
    created(create_from_file_or(
        "compute", file, workspace_path,
        lambda ws: ws.computes.create(name, type=compute_type,
                                      max_concurrent_jobs=max_concurrent,
                                      description=description, tags=parse_tags(tags),
                                      **settings),
        {"name": name}), output)


compute_create = with_options(COMMON_CREATE, compute_create)


# `mlws create -f FILE`: any kind, told by $schema ----------------------------------------------------
@click.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False))
@WORKSPACE
@OUTPUT
def create_any(file: str, workspace_path: str | None, output: str) -> None:
    """Register any asset (or submit a job) from a YAML file whose $schema says its kind."""
    from jupyter_mlws.jobs.model import Job

    result = open_workspace(workspace_path).create_from_file(file)
    if isinstance(result, Job):
        emit(result.public_dict(), output,
             table=lambda: click.echo(f"Submitted job {result.id} ({result.status})"))
    else:
        created(result, output)

