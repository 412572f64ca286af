"""The ``mlws`` command. It holds no logic: it parses, calls the Workspace, and prints.

Readable tables by default, ``-o json`` for scripts. Errors print one line to stderr and exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml

from jupyter_mlws.assets.base import Asset
from jupyter_mlws.errors import MlwsError

OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table",
    show_default=True, help="Output format.",
)
WORKSPACE = click.option(
    "-w", "--workspace", "workspace_path", type=click.Path(file_okay=False), default=None,
    help="Workspace folder (default: $MLWS_WORKSPACE, else the nearest .mlws/, else ~/.mlws).",
)


def _open(workspace_path: str | None) -> Any:
    from jupyter_mlws.workspace import Workspace

    return Workspace.open(workspace_path) if workspace_path else Workspace.open()


def _parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            raise click.BadParameter(f"{pair!r} must look like key=value", param_hint="--tag")
        tags[key] = value if sep else ""
    return tags


def _split_ref(ref: str, version: str | None) -> tuple[str, str | None]:
    if version is None and ":" in ref:
        name, _, v = ref.partition(":")
        return name, v
    if ref.endswith("@latest"):
        return ref[: -len("@latest")], version
    return ref, version


def _age(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M")
    return str(value)


def _human_size(n: Any) -> str:
    if not isinstance(n, int):
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def print_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """Print ``rows`` as an aligned table of ``(key, header)`` columns."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(r.get(k, "") if r.get(k) is not None else "") for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(columns)]
    click.echo("  ".join(h.upper().ljust(w) for (_, h), w in zip(columns, widths)).rstrip())
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


def emit(data: Any, output: str, *, table: Callable[[], None] | None = None) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    elif output == "yaml" or table is None:
        click.echo(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False))
    else:
        table()


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
    d["created"] = _age(asset.created_at)
    d["tags_text"] = ",".join(f"{k}={v}" if v else k for k, v in sorted(asset.tags.items()))
    if asset.archived:
        d["version"] = f"{asset.version} (archived)"
    if "hash" in d:
        d["hash12"] = d["hash"][:12]
    if d.get("sha256"):
        d["sha12"] = str(d["sha256"])[:12]
    d["size_text"] = _human_size(d.get("size"))
    if asset.kind == "data":
        d["where"] = "stored " + _human_size(d.get("size")) if d.get("stored") else d.get("uri")
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
            value = _age(value)
        if key == "size":
            value = f"{_human_size(value)} ({value} bytes)"
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        click.echo(f"{key + ':':<18}{value}")
    click.echo("spec:")
    click.echo("  " + yaml.safe_dump(data["spec"], sort_keys=True).replace("\n", "\n  ").rstrip())


# --- the command tree ------------------------------------------------------------------------------


class MlwsGroup(click.Group):
    """Turns :class:`MlwsError` into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlwsError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=MlwsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jupyter_mlws", prog_name="mlws")
def main() -> None:
    """A local-first machine-learning workspace: environments, models, data, components,
    datastores and computes, versioned in an embedded store."""


@main.group()
def workspace() -> None:
    """Create and inspect workspaces."""


@workspace.command("init")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--store-uri", help="SQLAlchemy URL of a shared database (default: SQLite inside).")
@OUTPUT
def workspace_init(path: str | None, store_uri: str | None, output: str) -> None:
    """Create a workspace in PATH/.mlws (default: the current folder)."""
    from jupyter_mlws.workspace import Workspace

    ws = Workspace.init(path, store_uri=store_uri)
    info = ws.info()
    emit(info, output, table=lambda: click.echo(f"Workspace ready at {info['path']}"))


@workspace.command("show")
@WORKSPACE
@OUTPUT
def workspace_show(workspace_path: str | None, output: str) -> None:
    """Where the workspace is and what it holds."""
    info = _open(workspace_path).info()

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
    removed = _open(workspace_path).gc(older_than_s=older_than)
    click.echo(f"Removed {len(removed)} unreferenced blob(s).")


@main.command("schema")
@click.option("--out", type=click.Path(file_okay=False), default="schemas", show_default=True)
def schema_cmd(out: str) -> None:
    """Write the JSON Schemas of every YAML spec (for editors' $schema support)."""
    from jupyter_mlws.assets.schemas import write_schemas

    for p in write_schemas(Path(out)):
        click.echo(str(p))


def _cluster_fields(item: Asset) -> dict[str, Any]:
    """For a Ray compute: the cluster's nodes, resources and health (the token never shows)."""
    if item.kind != "compute" or item.spec.get("type") != "ray":
        return {}
    from jupyter_mlws.compute.ray import describe_compute

    return describe_compute(item)


def _kind_group(kind: str, name: str, help_text: str) -> click.Group:
    """The commands every asset kind has: list, show, archive, restore, update."""
    group = click.Group(name=name, help=help_text)

    @group.command("list")
    @click.option("-n", "--name", "asset_name", help="List the versions of this name.")
    @click.option("--tag", "tags", multiple=True, help="Filter by tag (key or key=value).")
    @click.option("--include-archived", is_flag=True, help="Include archived versions.")
    @click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
    @click.option("--offset", type=click.IntRange(min=0), default=0)
    @WORKSPACE
    @OUTPUT
    def list_cmd(asset_name: str | None, tags: Sequence[str], include_archived: bool,
                 limit: int | None, offset: int, workspace_path: str | None,
                 output: str, **extra: Any) -> None:
        """Without --name: the latest version of each name. With it: every version."""
        tag_filter: dict[str, str | None] = {}
        for t in tags:
            key, sep, value = t.partition("=")
            tag_filter[key] = value if sep else None
        ops = _open(workspace_path).operations(kind)
        items = ops.list(asset_name, tags=tag_filter or None, include_archived=include_archived,
                         limit=limit, offset=offset, **extra)
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
        asset_name, v = _split_ref(ref, version)
        ws = _open(workspace_path)
        item = ws.operations(kind).get(asset_name, v)
        _show(item, output, {**ws.describe(item), **_cluster_fields(item)})

    for verb, flag in (("archive", True), ("restore", False)):

        def make(verb: str = verb, flag: bool = flag) -> None:
            @group.command(verb, help=f"{verb.capitalize()} one version, or every version.")
            @click.argument("ref")
            @click.option("-v", "--version", help="Only this version (default: all versions).")
            @WORKSPACE
            def cmd(ref: str, version: str | None, workspace_path: str | None) -> None:
                asset_name, v = _split_ref(ref, version)
                ops = _open(workspace_path).operations(kind)
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
        asset_name, v = _split_ref(ref, version)
        ops = _open(workspace_path).operations(kind)
        v = v or ops.get(asset_name).version
        _show(ops.update(asset_name, v, description=description, tags=_parse_tags(tags),
                         remove_tags=list(remove)), output)

    return group


def _created(asset: Asset, output: str) -> None:
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


def _with(options: Iterable[Callable[[Any], Any]], f: Any) -> Any:
    for opt in reversed(list(options)):
        f = opt(f)
    return f


def _create_from_file_or(kind: str, file: str | None, workspace_path: str | None,
                         build: Callable[[Any], Asset], need: dict[str, Any]) -> Asset:
    ws = _open(workspace_path)
    if file:
        return ws.create_from_file(file, kind=kind)
    missing = [f"--{k.replace('_', '-')}" for k, v in need.items() if v is None]
    if missing:
        raise click.UsageError(f"give -f FILE, or {' and '.join(missing)}")
    return build(ws)


# environments -----------------------------------------------------------------------------------
env_group = _kind_group("environment", "env", "Environments: definitions identified by hash.")
main.add_command(env_group)


@env_group.command("create")
@FILE_OPT
@click.option("-n", "--name")
@click.option("--image", help="Base image, or a ready image when nothing else is given.")
@click.option("--conda-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--pip-requirements", type=click.Path(exists=True, dir_okay=False))
@click.option("--build-context", type=click.Path(exists=True, file_okay=False),
              help="A Docker build context folder, used as is.")
@click.option("--dockerfile-path", default="Dockerfile", show_default=True)
@click.option("--from", "from_", help="Copy an existing environment, e.g. an MLWS- one.")
@WORKSPACE
@OUTPUT
def env_create(file: str | None, name: str | None, image: str | None, conda_file: str | None,
               pip_requirements: str | None, build_context: str | None, dockerfile_path: str,
               from_: str | None, version: str | None, description: str | None,
               tags: Sequence[str], workspace_path: str | None, output: str) -> None:
    """Register an environment from a YAML file or from options."""
    def build(ws: Any) -> Asset:
        return ws.environments.create(
            name,
            image=image,
            conda_file=conda_file,
            pip_requirements=(Path(pip_requirements).read_text().splitlines()
                              if pip_requirements else None),
            build={"path": build_context, "dockerfile_path": dockerfile_path}
            if build_context else None,
            from_=from_, version=version, description=description,
            tags=_parse_tags(tags) or None,
        )

    _created(_create_from_file_or("environment", file, workspace_path, build, {"name": name}),
             output)


env_create = _with(COMMON_CREATE, env_create)


@env_group.command("diff")
@click.argument("name")
@click.argument("v1")
@click.argument("v2")
@WORKSPACE
@OUTPUT
def env_diff(name: str, v1: str, v2: str, workspace_path: str | None, output: str) -> None:
    """What changed between two versions, and whether the image changes."""
    d = _open(workspace_path).environments.diff(name, v1, v2)

    def table() -> None:
        verdict = "changes: a new image" if d["hash_changed"] else "is unchanged: same image"
        click.echo(f"{name} {v1} -> {v2}: the hash {verdict}")
        click.echo(f"  {d['image_from']} -> {d['image_to']}")
        for section in ("pip", "conda"):
            s = d[section]
            for item in s["added"]:
                click.echo(f"  + {section}: {item}")
            for item in s["removed"]:
                click.echo(f"  - {section}: {item}")
            for item in s["changed"]:
                click.echo(f"  ~ {section}: {item['from']} -> {item['to']}")
            if s["reordered"]:
                click.echo(f"  ~ {section}: order changed")
        for c in d["changes"]:
            click.echo(f"  ~ {c['field']}: {c['from']} -> {c['to']}")

    emit(d, output, table=table)


@env_group.command("hash")
@FILE_OPT
@click.option("--by-hash", help="Find the environment registered with this hash (or prefix).")
@WORKSPACE
def env_hash(file: str | None, by_hash: str | None, workspace_path: str | None) -> None:
    """Print the hash and image name of a YAML definition without registering it."""
    if by_hash:
        env = _open(workspace_path).environments.get_by_hash(by_hash)
        click.echo(f"{env.name}:{env.version}  {env.env_hash}")
        return
    if not file:
        raise click.UsageError("give -f FILE or --by-hash HASH")
    from jupyter_mlws.assets.environment import EnvironmentSpec
    from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec

    data, index = load_yaml(file)
    data = EnvironmentSpec.prepare_yaml(
        {k: v for k, v in (data or {}).items() if k not in EnvironmentSpec.ignored_fields},
        Path(file).parent, file)
    spec = validate_spec(EnvironmentSpec, data, source=file, index=index)
    if spec.build is not None:
        from jupyter_mlws.artifacts import iter_folder
        from jupyter_mlws.environments.identity import dockerignore_spec, sha256_file

        folder = Path(spec.build.path or ".")
        spec.build.files = [(rel, sha256_file(p))
                            for rel, p in iter_folder(folder, dockerignore_spec(folder))]
    click.echo(f"{spec.env_hash()}  {spec.image_name()}")


def _build_printer() -> Callable[[str], None]:
    """Print build lines; Dockerfile steps stand out so progress is easy to follow."""
    def show(line: str) -> None:
        text = line.rstrip("\n")
        if text.startswith("Step ") and " : " in text:
            click.secho(text, bold=True)
        elif text.startswith("==> "):
            click.secho(text, fg="cyan")
        else:
            click.echo(text)
    return show


@env_group.command("build")
@click.argument("ref")
@click.option("-v", "--version")
@click.option("--builder", type=click.Choice(["docker", "venv"]), default="docker",
              show_default=True, help="A Docker image, or a virtualenv for local compute.")
@click.option("--refresh-base", is_flag=True,
              help="Rebuild when the base image's tag now points at another image.")
@click.option("--no-cache", is_flag=True, help="Build every layer afresh.")
@WORKSPACE
@OUTPUT
def env_build(ref: str, version: str | None, builder: str, refresh_base: bool, no_cache: bool,
              workspace_path: str | None, output: str) -> None:
    """Build an environment (or reuse its cached image/venv), streaming the log."""
    asset_name, v = _split_ref(ref, version)
    ws = _open(workspace_path)
    result = ws.environments.build(asset_name, v, builder=builder, refresh_base=refresh_base,
                                   no_cache=no_cache,
                                   log=_build_printer() if output == "table" else None)
    data = result.to_dict()
    data.pop("log", None)
    if output != "table":
        emit(data, output)
        return
    how = "cached" if result.cached else f"built in {result.build_seconds:.1f} s"
    click.echo(f"{result.image} ({how}, {_human_size(result.size)})")
    if result.resolved_packages:
        click.echo(f"  {len(result.resolved_packages)} packages resolved; "
                   f"`mlws env show {asset_name}` lists them")


@env_group.command("logs")
@click.argument("ref")
@click.option("-v", "--version")
@click.option("--builder", type=click.Choice(["docker", "venv"]), default="docker",
              show_default=True)
@WORKSPACE
def env_logs(ref: str, version: str | None, builder: str, workspace_path: str | None) -> None:
    """Print the full log of an environment's last build."""
    asset_name, v = _split_ref(ref, version)
    click.echo(_open(workspace_path).environments.logs(asset_name, v, builder=builder))


@env_group.command("images")
@WORKSPACE
@OUTPUT
def env_images(workspace_path: str | None, output: str) -> None:
    """Built environment images, their sizes and the versions that use them."""
    images = _open(workspace_path).environments.images()
    rows = [{**i, "size_text": _human_size(i.get("size")), "hash12": i["env_hash"][:12],
             "users": ", ".join(i["used_by"]) or "(none: `mlws env prune` removes it)"}
            for i in images]
    emit(images, output, table=lambda: print_table(
        rows, [("repository", "image"), ("hash12", "hash"), ("size_text", "size"),
               ("users", "used by")]))


@env_group.command("prune")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@WORKSPACE
def env_prune(dry_run: bool, workspace_path: str | None) -> None:
    """Remove images no registered, non-archived environment version uses."""
    removed = _open(workspace_path).environments.prune(dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    for image in removed:
        click.echo(f"{verb} {image['repository']} ({_human_size(image.get('size'))})")
    click.echo(f"{verb} {len(removed)} image(s).")


@main.group()
def image() -> None:
    """Base images made offline from Debian's packages."""


@image.command("bootstrap")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Remake the images even when they exist.")
def image_bootstrap(names: Sequence[str], force: bool) -> None:
    """Make the curated base images (debootstrap + docker import); no registry needed."""
    from jupyter_mlws.docker_engine import docker_client
    from jupyter_mlws.environments.bootstrap import bootstrap_base_images

    for r in bootstrap_base_images(docker_client(), list(names) or None, force=force,
                                   log=click.echo):
        how = "already there" if r.reused else f"made in {r.seconds:.0f} s"
        click.echo(f"{r.name}: {how} ({_human_size(r.size)})")


# models ---------------------------------------------------------------------------------------------
model_group = _kind_group("model", "model", "Models: versioned files and folders.")
main.add_command(model_group)


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
    _created(_create_from_file_or(
        "model", file, workspace_path,
        lambda ws: ws.models.create(name, path, type=model_type, version=version,
                                    description=description, tags=_parse_tags(tags)),
        {"name": name, "path": path}), output)


model_create = _with(COMMON_CREATE, model_create)


def _download_cmd(group: click.Group, kind: str) -> None:
    @group.command("download")
    @click.argument("ref")
    @click.option("-v", "--version")
    @click.option("-d", "--dest", type=click.Path(file_okay=False), default=".",
                  show_default=True, help="Folder to write into.")
    @WORKSPACE
    def download(ref: str, version: str | None, dest: str, workspace_path: str | None) -> None:
        """Write a version's files into DEST."""
        asset_name, v = _split_ref(ref, version)
        out = _open(workspace_path).operations(kind).download(asset_name, v, dest)
        click.echo(str(out))


_download_cmd(model_group, "model")

# data ------------------------------------------------------------------------------------------------
data_group = _kind_group("data", "data", "Data: copied files and folders, or references.")
main.add_command(data_group)


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
    _created(_create_from_file_or(
        "data", file, workspace_path,
        lambda ws: ws.data.create(name, path, type=data_type, version=version,
                                  description=description, tags=_parse_tags(tags)),
        {"name": name, "path": path}), output)


data_create = _with(COMMON_CREATE, data_create)
_download_cmd(data_group, "data")

# components ---------------------------------------------------------------------------------------
component_group = _kind_group("component", "component", "Command components.")
main.add_command(component_group)


@component_group.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False))
@WORKSPACE
@OUTPUT
def component_create(file: str, workspace_path: str | None, output: str) -> None:
    """Register a command component from its YAML file."""
    _created(_open(workspace_path).create_from_file(file, kind="component"), output)


# datastores -----------------------------------------------------------------------------------------
datastore_group = _kind_group("datastore", "datastore", "Datastores: folders and fsspec URLs.")
main.add_command(datastore_group)


@datastore_group.command("create")
@FILE_OPT
@click.option("-n", "--name")
@click.option("--type", "ds_type", type=click.Choice(["local", "fsspec"]), default="local",
              show_default=True)
@click.option("--path", type=click.Path(file_okay=False), help="Folder of a local datastore.")
@click.option("--url", help="URL of an fsspec datastore, e.g. s3://bucket/prefix.")
@click.option("--credential", "credentials", multiple=True,
              help="A credential key=value (kept secret; repeatable).")
@WORKSPACE
@OUTPUT
def datastore_create(file: str | None, name: str | None, ds_type: str, path: str | None,
                     url: str | None, credentials: Sequence[str], version: str | None,
                     description: str | None, tags: Sequence[str], workspace_path: str | None,
                     output: str) -> None:
    """Register a datastore from a YAML file or options."""
    _created(_create_from_file_or(
        "datastore", file, workspace_path,
        lambda ws: ws.datastores.create(name, type=ds_type, path=path, url=url,
                                        credentials=_parse_tags(credentials),
                                        description=description, tags=_parse_tags(tags)),
        {"name": name}), output)


datastore_create = _with(COMMON_CREATE, datastore_create)

# computes ------------------------------------------------------------------------------------------
compute_group = _kind_group("compute", "compute", "Compute definitions.")
main.add_command(compute_group)


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
    _created(_create_from_file_or(
        "compute", file, workspace_path,
        lambda ws: ws.computes.create(name, type=compute_type,
                                      max_concurrent_jobs=max_concurrent,
                                      description=description, tags=_parse_tags(tags),
                                      **settings),
        {"name": name}), output)


compute_create = _with(COMMON_CREATE, compute_create)


# jobs ------------------------------------------------------------------------------------------------
@main.group()
def job() -> None:
    """Jobs: notebooks, commands and pipelines on a compute target."""


def _literal(text: str) -> Any:
    """A parameter value as a Python literal (``0.1`` is a float, ``[64, 32]`` a list)."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} must look like name=value", param_hint=what)
        out[key] = value
    return out


def _job_row(j: Any) -> dict[str, Any]:
    d = j.public_dict()
    d["created"] = _age(j.created_at)
    d["duration"] = f"{j.duration_s:.1f} s" if j.duration_s is not None else ""
    d["name"] = j.display_name or ""
    return d


JOB_COLUMNS = [("id", "id"), ("type", "type"), ("status", "status"), ("name", "name"),
               ("compute", "compute"), ("created", "created"), ("duration", "duration")]


def _after_submit(ws: Any, j: Any, wait: bool, stream: bool, output: str) -> None:
    if stream:
        for line in ws.jobs.stream(j.id):
            click.echo(line)
        j = ws.jobs.get(j.id)
    elif wait:
        j = ws.jobs.wait(j.id)
    if output != "table":
        emit(j.public_dict(), output)
    else:
        click.echo(f"Job {j.id}: {j.status}" + (f" ({j.error})" if j.error else ""))
        if not (wait or stream):
            click.echo(f"  follow it with `mlws job stream {j.id}`")
    if (wait or stream) and j.status != "Completed":
        raise SystemExit(1)


SUBMIT_OPTS = [
    click.option("-e", "--environment", help="Environment (NAME, NAME:VERSION, NAME@latest)."),
    click.option("-c", "--compute", help="Compute target (default: local)."),
    click.option("-i", "--input", "inputs", multiple=True,
                 help="An input name=value: a data/model reference, a path or a literal."),
    click.option("--out", "outputs", multiple=True, help="A named output folder (repeatable)."),
    click.option("--experiment", help="Group jobs under an experiment name."),
    click.option("--timeout", type=float, help="Fail the job after this many seconds."),
    click.option("--wait", is_flag=True, help="Wait until the job ends (exit 1 unless Completed)."),
    click.option("--stream", is_flag=True, help="Print the log as it comes, until the job ends."),
    WORKSPACE, OUTPUT,
]


@job.command("notebook")
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True,
              metavar="NAME VALUE", help="A parameter; the value is read as a Python literal.")
@click.option("--code", type=click.Path(exists=True, file_okay=False),
              help="The folder to snapshot (default: the notebook's folder).")
def job_notebook(notebook: str, parameters: Sequence[tuple[str, str]], code: str | None,
                 environment: str | None, compute: str | None, inputs: Sequence[str],
                 outputs: Sequence[str], experiment: str | None, timeout: float | None,
                 wait: bool, stream: bool, workspace_path: str | None, output: str) -> None:
    """Run a notebook with papermill as a job."""
    ws = _open(workspace_path)
    j = ws.jobs.submit_notebook(
        notebook, {k: _literal(v) for k, v in parameters}, environment=environment,
        compute=compute, inputs={k: _literal(v) if v[:1].isdigit() else v
                                 for k, v in _pairs(inputs, "--input").items()},
        outputs={o: {"type": "uri_folder"} for o in outputs}, code=code,
        experiment=experiment, timeout=timeout)
    _after_submit(ws, j, wait, stream, output)


job_notebook = _with(SUBMIT_OPTS, job_notebook)


@job.command("command")
@click.argument("command")
@click.option("--code", type=click.Path(exists=True, file_okay=False))
def job_command(command: str, code: str | None, environment: str | None, compute: str | None,
                inputs: Sequence[str], outputs: Sequence[str], experiment: str | None,
                timeout: float | None, wait: bool, stream: bool, workspace_path: str | None,
                output: str) -> None:
    """Run a shell command as a job (${{inputs.x}} and ${{outputs.y}} are filled in)."""
    ws = _open(workspace_path)
    j = ws.jobs.submit_command(
        command, code=code, environment=environment, compute=compute,
        inputs={k: _literal(v) if v[:1].isdigit() else v
                for k, v in _pairs(inputs, "--input").items()},
        outputs={o: {"type": "uri_folder"} for o in outputs}, experiment=experiment,
        timeout=timeout)
    _after_submit(ws, j, wait, stream, output)


job_command = _with(SUBMIT_OPTS, job_command)


@job.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-c", "--compute", help="Override the spec's compute.")
@click.option("--wait", is_flag=True)
@click.option("--stream", is_flag=True)
@WORKSPACE
@OUTPUT
def job_create(file: str, compute: str | None, wait: bool, stream: bool,
               workspace_path: str | None, output: str) -> None:
    """Submit a command or pipeline job from its YAML (Azure ML CLI v2 shapes)."""
    ws = _open(workspace_path)
    j = ws.jobs.create_from_file(file, **({"compute": compute} if compute else {}))
    _after_submit(ws, j, wait, stream, output)


@job.command("list")
@click.option("--status", multiple=True, help="Only jobs in this state (repeatable).")
@click.option("--experiment")
@click.option("--parent", help="The steps of this pipeline job.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@WORKSPACE
@OUTPUT
def job_list(status: Sequence[str], experiment: str | None, parent: str | None, limit: int,
             offset: int, workspace_path: str | None, output: str) -> None:
    """Jobs, newest first."""
    jobs = _open(workspace_path).jobs.list(status=list(status) or None, experiment=experiment,
                                           parent_id=parent, limit=limit, offset=offset)
    emit([j.public_dict() for j in jobs], output,
         table=lambda: print_table([_job_row(j) for j in jobs], JOB_COLUMNS))


@job.command("show")
@click.argument("job_id")
@WORKSPACE
@OUTPUT
def job_show(job_id: str, workspace_path: str | None, output: str) -> None:
    """A job: its states, what it consumed and produced, its metrics."""
    ws = _open(workspace_path)
    j = ws.jobs.get(job_id)
    data = j.public_dict()
    data["events"] = [e.model_dump(mode="json") for e in ws.jobs.events(j.id)]
    data["params"] = ws.jobs.params(j.id)
    data["inputs"] = [io.model_dump() for io in ws.jobs.io(j.id) if io.direction == "input"]
    data["outputs"] = [io.model_dump() for io in ws.jobs.io(j.id) if io.direction == "output"]
    data["produced"] = ws.jobs.produced(j.id)
    data["progress"] = ws.jobs.progress(j.id) if j.type == "notebook" else None
    data["children"] = [c.id for c in ws.jobs.children(j.id)]
    metrics = ws.jobs.metrics(j.id)
    data["metrics"] = [m.model_dump(mode="json") for m in metrics]
    if output != "table":
        emit(data, output)
        return
    for key in ("id", "type", "status", "display_name", "experiment", "compute", "environment",
                "image", "error"):
        if data.get(key):
            click.echo(f"{key + ':':<14}{data[key]}")
    for e in data["events"]:
        click.echo(f"  {_age(e['at'])}  {e['status']}" + (f"  {e['message']}"
                                                          if e.get("message") else ""))
    for label in ("params",):
        if data[label]:
            click.echo(f"{label + ':':<14}" + ", ".join(f"{k}={v}" for k, v in data[label].items()))
    for io in data["inputs"]:
        click.echo(f"consumed:     {io['name']} <- {io['asset'] or io['uri'] or io['value']}")
    for io in data["outputs"]:
        click.echo(f"output:       {io['name']} -> {io['uri']}")
    for ref in data["produced"]:
        click.echo(f"produced:     {ref}")
    last: dict[str, Any] = {}
    for m in metrics:
        last[m.key] = m.value
    if last:
        click.echo("metrics:      " + ", ".join(f"{k}={v:g}" for k, v in last.items()))
    if data["children"]:
        click.echo("steps:        " + ", ".join(data["children"]))


@job.command("logs")
@click.argument("job_id")
@click.option("--tail", type=int, help="Only the last N lines.")
@WORKSPACE
def job_logs(job_id: str, tail: int | None, workspace_path: str | None) -> None:
    """Print a job's log (the environment preparation, then what the job printed)."""
    click.echo(_open(workspace_path).jobs.logs(job_id, tail=tail), nl=False)


@job.command("stream")
@click.argument("job_id")
@WORKSPACE
def job_stream(job_id: str, workspace_path: str | None) -> None:
    """Print a job's log as it is written, until the job ends."""
    ws = _open(workspace_path)
    for line in ws.jobs.stream(job_id):
        click.echo(line)
    j = ws.jobs.get(job_id)
    click.echo(f"Job {j.id}: {j.status}" + (f" ({j.error})" if j.error else ""), err=True)


@job.command("cancel")
@click.argument("job_id")
@WORKSPACE
def job_cancel(job_id: str, workspace_path: str | None) -> None:
    """Stop a job and everything it started."""
    ws = _open(workspace_path)
    ws.jobs.cancel(job_id)
    j = ws.jobs.wait(job_id, timeout=60)
    click.echo(f"Job {j.id}: {j.status}")


@job.command("rerun")
@click.argument("job_id")
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE")
@click.option("-c", "--compute")
@WORKSPACE
@OUTPUT
def job_rerun(job_id: str, parameters: Sequence[tuple[str, str]], compute: str | None,
              workspace_path: str | None, output: str) -> None:
    """Submit a job again (parameters can be changed)."""
    ws = _open(workspace_path)
    extra: dict[str, Any] = {"parameters": {k: _literal(v) for k, v in parameters}}
    if compute:
        extra["compute"] = compute
    _after_submit(ws, ws.jobs.rerun(job_id, **extra), False, False, output)


@job.command("download")
@click.argument("job_id")
@click.option("-d", "--dest", type=click.Path(file_okay=False), default=".", show_default=True)
@click.option("--what", type=click.Choice(["all", "outputs", "logs", "notebook"]), default="all",
              show_default=True)
@WORKSPACE
def job_download(job_id: str, dest: str, what: str, workspace_path: str | None) -> None:
    """Copy a job's outputs, logs and output notebook into DEST/<job id>."""
    click.echo(str(_open(workspace_path).jobs.download(job_id, dest, what=what)))


# `mlws create -f FILE`: any kind, told by $schema ----------------------------------------------------
@main.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(exists=True, dir_okay=False))
@WORKSPACE
@OUTPUT
def create_any(file: str, workspace_path: str | None, output: str) -> None:
    """Register any asset (or submit a job) from a YAML file whose $schema says its kind."""
    from jupyter_mlws.jobs.model import Job

    result = _open(workspace_path).create_from_file(file)
    if isinstance(result, Job):
        emit(result.public_dict(), output,
             table=lambda: click.echo(f"Submitted job {result.id} ({result.status})"))
    else:
        _created(result, output)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process; returns the exit status (for tests and embedding)."""
    try:
        main.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MlwsError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
