"""``mlws env ...`` (environments and their builds) and ``mlws image ...`` (base images)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from jupyter_mlws.assets.base import Asset
from jupyter_mlws.cli._common import (
    OUTPUT,
    WORKSPACE,
    open_workspace,
    parse_tags,
    split_ref,
    with_options,
)
from jupyter_mlws.cli._format import emit, human_size, print_table
from jupyter_mlws.cli.assets import (
    COMMON_CREATE,
    FILE_OPT,
    create_from_file_or,
    created,
    kind_group,
)
from jupyter_mlws.cli.registry import share_command

env_group = kind_group("environment", "env", "Environments: definitions identified by hash.")
env_group.add_command(share_command("environment"))


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
            tags=parse_tags(tags) or None,
        )

    created(create_from_file_or("environment", file, workspace_path, build, {"name": name}),
             output)


env_create = with_options(COMMON_CREATE, env_create)


@env_group.command("diff")
@click.argument("name")
@click.argument("v1")
@click.argument("v2")
@WORKSPACE
@OUTPUT
def env_diff(name: str, v1: str, v2: str, workspace_path: str | None, output: str) -> None:
    """What changed between two versions, and whether the image changes."""
    d = open_workspace(workspace_path).environments.diff(name, v1, v2)

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
        env = open_workspace(workspace_path).environments.get_by_hash(by_hash)
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
        from jupyter_mlws.environments.identity import dockerignore_spec
        from jupyter_mlws.fileio import file_sha256

        folder = Path(spec.build.path or ".")
        spec.build.files = [(rel, file_sha256(p))
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
    asset_name, v = split_ref(ref, version)
    ws = open_workspace(workspace_path)
    result = ws.environments.build(asset_name, v, builder=builder, refresh_base=refresh_base,
                                   no_cache=no_cache,
                                   log=_build_printer() if output == "table" else None)
    data = result.to_dict()
    data.pop("log", None)
    if output != "table":
        emit(data, output)
        return
    how = "cached" if result.cached else f"built in {result.build_seconds:.1f} s"
    click.echo(f"{result.image} ({how}, {human_size(result.size)})")
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
    asset_name, v = split_ref(ref, version)
    click.echo(open_workspace(workspace_path).environments.logs(asset_name, v, builder=builder))


@env_group.command("images")
@WORKSPACE
@OUTPUT
def env_images(workspace_path: str | None, output: str) -> None:
    """Built environment images, their sizes and the versions that use them."""
    images = open_workspace(workspace_path).environments.images()
    rows = [{**i, "size_text": human_size(i.get("size")), "hash12": i["env_hash"][:12],
             "users": ", ".join(i["used_by"]) or "(none: `mlws env prune` removes it)"}
            for i in images]
    emit(images, output, table=lambda: print_table(
        rows, [("repository", "image"), ("hash12", "hash"), ("size_text", "size"),
               ("users", "used by")]))


@env_group.command("prune")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--wheels", is_flag=True,
              help="Also empty the wheelhouse (the package files kept so rebuilds from a lock "
              "need no index, and their bytecode; later builds download and compile again).")
@WORKSPACE
def env_prune(dry_run: bool, wheels: bool, workspace_path: str | None) -> None:
    """Remove images no registered, non-archived environment version uses, here or in another
    workspace of this machine that built or reused them (the wheelhouse stays unless --wheels)."""
    envs = open_workspace(workspace_path).environments
    removed = envs.prune(dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    for image in removed:
        click.echo(f"{verb} {image['repository']} ({human_size(image.get('size'))})")
    click.echo(f"{verb} {len(removed)} image(s).")
    if wheels:
        files, size = envs.clear_wheelhouse(dry_run=dry_run)
        click.echo(f"{verb} {files} file(s) ({human_size(size)}) from the wheelhouse "
                   "(bytecode cache included).")


@env_group.command("lock")
@click.argument("ref")
@click.argument("packages", nargs=-1)
@click.option("-v", "--version")
@click.option("--update", is_flag=True,
              help="Re-resolve (the named PACKAGES, else all) into a NEW environment version.")
@click.option("--python", help="The Python series of the lock (when built on several).")
@WORKSPACE
def env_lock(ref: str, packages: Sequence[str], version: str | None, update: bool,
             python: str | None, workspace_path: str | None) -> None:
    """Print the lock of NAME[:VER] (pip --require-hashes requirements); --update moves it.

    Every build of an environment version installs exactly its lock, recorded at its first
    build. `--update [PKG...]` resolves again and registers the result as a new version (the
    old version keeps its lock); `mlws env diff` shows what moved.
    """
    asset_name, v = split_ref(ref, version)
    ws = open_workspace(workspace_path)
    if packages and not update:
        raise click.UsageError("name packages only with --update")
    if not update:
        click.echo(ws.environments.lock(asset_name, v, python=python), nl=False)
        return
    old = ws.environments.get(asset_name, v)
    new = ws.environments.update_lock(asset_name, v, packages=list(packages))
    if new.version == old.version:
        click.echo(f"{old.ref}: nothing moved; the lock stays.")
        return
    click.echo(f"Registered {new.ref} (from {old.ref}); build it to record its lock: "
               f"`mlws env build {new.ref}`")
    for item in ws.environments.diff(asset_name, old.version, new.version)["pip"]["changed"]:
        click.echo(f"  ~ {item['from']} -> {item['to']}")


@click.group()
def image() -> None:
    """Base images made offline from Debian's packages."""


@image.command("bootstrap")
@click.argument("names", nargs=-1)
@click.option("--python", "pythons", multiple=True, type=click.Choice(["3.9", "3.11", "3.13"]),
              help="Make the base of this Python series (repeatable).")
@click.option("--all", "all_images", is_flag=True, help="Make every offline base.")
@click.option("--force", is_flag=True, help="Remake the images even when they exist.")
def image_bootstrap(names: Sequence[str], pythons: Sequence[str], all_images: bool,
                    force: bool) -> None:
    """Make offline base images (debootstrap + docker import); no registry needed.

    Without arguments, the default base (Python 3.11). Builds whose Python image is mapped to a
    missing base make it on demand.
    """
    from jupyter_mlws.docker_engine import docker_client
    from jupyter_mlws.environments.bootstrap import bootstrap_base_images, wanted_images

    wanted = wanted_images(list(names), list(pythons), all_images)
    for r in bootstrap_base_images(docker_client(), wanted, force=force, log=click.echo):
        how = "already there" if r.reused else f"made in {r.seconds:.0f} s"
        click.echo(f"{r.name}: {how} ({human_size(r.size)})")


@image.command("patch")
@click.argument("bases", nargs=-1)
@click.option("--always", is_flag=True, help="Make a new tag even when nothing was upgraded.")
@OUTPUT
def image_patch(bases: Sequence[str], always: bool, output: str) -> None:
    """Apply Debian's current updates to offline bases (default: the default base).

    Each patch is a new immutable tag (<tag>-pYYYYMMDD); the floating tag moves to it. Then
    `mlws env outdated` lists the environments built on the old base.
    """
    from jupyter_mlws.docker_engine import docker_client
    from jupyter_mlws.environments.bootstrap import DEFAULT_BASE_IMAGE
    from jupyter_mlws.environments.patching import patch_base

    client = docker_client()
    say = click.echo if output == "table" else (lambda _line: None)
    results = [patch_base(client, b, always=always, log=say).to_dict()
               for b in (bases or [DEFAULT_BASE_IMAGE])]
    if output != "table":
        emit(results, output)


@image.command("list-bases")
@OUTPUT
def image_list_bases(output: str) -> None:
    """Offline base images: their tags, when made or patched, packages each patch updated."""
    from jupyter_mlws.docker_engine import docker_client
    from jupyter_mlws.environments.patching import list_bases

    rows = list_bases(docker_client())
    shown = [{**r, "tags_text": ", ".join(r["tags"]) or "(untagged)", "id12": r["id"][7:19],
              "when": (r["patched"] or str(r["created"]))[:19],
              "updated_text": str(r["updated"]) if r["patched"] else "-"} for r in rows]
    emit(rows, output, table=lambda: print_table(
        shown, [("tags_text", "tags"), ("id12", "id"), ("when", "made/patched"),
                ("updated_text", "updated")]))


@env_group.command("outdated")
@WORKSPACE
@OUTPUT
def env_outdated(workspace_path: str | None, output: str) -> None:
    """Environment versions built on a base that has moved (patched), and what uses them."""
    rows = open_workspace(workspace_path).environments.outdated()
    shown = [{**r, "base_text": f"{r['base_image']} ({r['built_on'][7:19]} -> "
              f"{r['base_now'][7:19]})",
              "users": ", ".join([f"{len(r['jobs'])} job(s)", *r["models"], *r["deployments"]])}
             for r in rows]
    emit(rows, output, table=lambda: print_table(
        shown, [("environment", "environment"), ("base_text", "base"), ("users", "used by")])
        if rows else click.echo("Every built environment is on its base's current image."))


@env_group.command("rebuild")
@click.argument("ref", required=False)
@click.option("--outdated", "all_outdated", is_flag=True, help="Every `mlws env outdated` one.")
@click.option("--redeploy", is_flag=True, help="Roll the online deployments serving them.")
@WORKSPACE
@OUTPUT
def env_rebuild(ref: str | None, all_outdated: bool, redeploy: bool,
                workspace_path: str | None, output: str) -> None:
    """Rebuild NAME[:VER] (or --outdated ones) on the current base, from the recorded lock."""
    if bool(ref) == all_outdated:
        raise click.UsageError("give NAME[:VER] or --outdated")
    envs = open_workspace(workspace_path).environments
    log = _build_printer() if output == "table" else None
    if all_outdated:
        done = envs.rebuild_outdated(log=log, redeploy=redeploy)
    else:
        assert ref is not None
        name, v = split_ref(ref, None)
        done = [envs.rebuild(name, v, log=log, redeploy=redeploy)]
    if output != "table":
        emit(done, output)
        return
    for d in done:
        how = "rebuilt from its lock" if d["from_lock"] else "rebuilt"
        click.echo(f"{d['environment']}: {how if d['rebuilt'] else 'already current'}"
                   + (f"; redeployed {', '.join(d['redeployed'])}" if d["redeployed"] else "")
                   + ("; no deployment serves it" if redeploy and d["rebuilt"]
                      and not d["redeployed"] else ""))
