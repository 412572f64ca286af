"""``mlws workspace migrate``: copy an embedded workspace (SQLite and its folder) into a team
workspace (a shared store and a remote artifact store), leaving the source as it is.

What is copied: every blob of the source's folder (each one hashed again while it is uploaded,
and refused if it does not hash to its name), every asset version with its number, tags,
description, creator, lineage job and archived state (curated environments excepted: every
workspace seeds its own), and every finished job with its parameters, metrics, inputs and
outputs, and its folder (outputs, logs, notebook) as a tree other machines fetch. A re-run copies
only what is missing; a version or job the team already holds with other content stops the run
with :class:`~jupyter_mlws.errors.MigrationConflictError` before anything of it is written.
Versions get the creation time of the copy (the store sets it); jobs that have not ended are
left out (their runner lives in the source folder).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.assets.base import ASSET_KINDS, Asset
from jupyter_mlws.errors import (
    MigrationConflictError,
    MigrationIntegrityError,
    NotFoundError,
    TeamWorkspaceError,
)
from jupyter_mlws.jobs import hosts
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.team_files import TREE_KEY, publish
from jupyter_mlws.store.base import NewVersion

if TYPE_CHECKING:
    from jupyter_mlws.jobs.model import Job
    from jupyter_mlws.workspace import Workspace


@dataclass
class MigrationReport:
    """What one run copied, and what it found already there."""

    blobs_copied: int = 0
    blobs_present: int = 0
    versions_copied: int = 0
    versions_present: int = 0
    jobs_copied: int = 0
    jobs_present: int = 0
    left_out: list[str] = field(default_factory=list)

    def public_dict(self) -> dict[str, Any]:
        return asdict(self)


def migrate(source: Workspace, target: Workspace) -> MigrationReport:
    """Copy ``source`` (embedded) into ``target`` (a team workspace); see the module docstring."""
    if not getattr(source.store, "is_sqlite", False) or source.artifacts.remote is not None:
        raise TeamWorkspaceError(
            f"{source.path} is not an embedded workspace (SQLite and a local folder).",
            hint="Migrate from the workspace folder a laptop uses; a team workspace is shared "
            "already.")
    if target.artifacts.remote is None:
        raise TeamWorkspaceError(
            "The target has no remote artifact store: other machines could not read the files.",
            hint="Give --artifact-uri s3://BUCKET/PREFIX (or the team's recorded one).")
    report = MigrationReport()
    versions = _source_versions(source)
    jobs = source.store.list_jobs(top_level=False, limit=None)
    _check_versions(target, versions)
    _check_jobs(source, target, jobs)
    _copy_blobs(source, target, report)
    for asset in versions:
        _copy_version(source, target, asset, report)
    for job in reversed(jobs):  # oldest first: a pipeline before its steps
        _copy_job(source, target, job, report)
    return report


def migrate_to(source: Workspace, store_uri: str | None, artifact_uri: str | None
               ) -> MigrationReport:
    """Copy ``source`` into the team workspace at ``store_uri`` (or ``$MLWS_STORE_URI``) and
    ``artifact_uri`` (default: the one the team recorded), made now if the store holds none."""
    import shutil
    import tempfile

    from jupyter_mlws.workspace import Workspace

    if not (store_uri or os.environ.get("MLWS_STORE_URI")):
        raise TeamWorkspaceError(
            "Migrating needs the team workspace's store URL.",
            hint="Give --store-uri postgresql+psycopg://USER@HOST:PORT/DB (or MLWS_STORE_URI).")
    scratch = Path(tempfile.mkdtemp(prefix="mlws-migrate-"))
    try:
        seeded = _seeded(store_uri)
        target = Workspace.init(scratch / "team", store_uri=store_uri, artifact_uri=artifact_uri,
                                join=seeded and not artifact_uri)
        try:
            return migrate(source, target)
        finally:
            target.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _seeded(store_uri: str | None) -> bool:
    """Whether the store already holds a workspace."""
    import tempfile

    from jupyter_mlws.artifacts.team import _store_uri
    from jupyter_mlws.store import open_store

    store = open_store(_store_uri(store_uri), lock_dir=Path(tempfile.gettempdir()))
    try:
        return store.get_meta("seeded") is not None
    finally:
        store.close()


def _source_versions(source: Workspace) -> list[Asset]:
    out: list[Asset] = []
    for kind in ASSET_KINDS:
        for name in source.store.names(kind, include_hidden=True):
            found = source.store.list_versions(kind, name, include_archived=True,
                                               include_hidden=True, limit=None)
            out += sorted((a for a in found if not a.curated), key=lambda a: a.created_at)
    return out


def _check_versions(target: Workspace, versions: list[Asset]) -> None:
    """Refuse before writing anything when the team holds one of these versions otherwise."""
    for asset in versions:
        try:
            there = target.store.get_version(asset.kind, asset.name, asset.version)
        except NotFoundError:
            continue
        if there.content_hash != asset.content_hash:
            raise MigrationConflictError(
                f"The team workspace already holds {asset.kind} {asset.name}:{asset.version} with "
                "other content.", kind=asset.kind, name=asset.name, version=asset.version,
                hint="Rename it in one of the two workspaces (register it under another name), "
                "or migrate into another team workspace.")


def _check_jobs(source: Workspace, target: Workspace, jobs: list[Job]) -> None:
    """Refuse before writing anything when the team holds another job of the same id."""
    for job in jobs:
        try:
            there = target.store.get_job(job.id)
        except NotFoundError:
            continue
        if there.spec.get("migrated_from") != _origin(source):
            raise MigrationConflictError(
                f"The team workspace already holds another job {job.id}.", kind="job",
                name=job.id, version="-", hint="Migrate into another team workspace.")


def _copy_blobs(source: Workspace, target: Workspace, report: MigrationReport) -> None:
    remote = target.artifacts.remote
    assert remote is not None
    folder = source.artifacts.blobs
    with target.artifacts.session() as session:
        for head in sorted(os.listdir(folder)) if folder.is_dir() else []:
            for rest in sorted(os.listdir(folder / head)):
                sha = head + rest
                if len(sha) != 64:
                    continue
                if remote.exists(sha):
                    report.blobs_present += 1
                    continue
                got, _size = target.artifacts.put_file(folder / head / rest, session)
                if got != sha:  # what was stored is named by its own hash: harmless, gc takes it
                    raise MigrationIntegrityError(
                        f"The blob {sha[:12]} of {source.path} hashes to {got[:12]}: the file "
                        "was changed or damaged.",
                        hint="Restore it (or re-register what it held) and run migrate again; "
                        "what was copied so far stays.")
                report.blobs_copied += 1


def _copy_version(source: Workspace, target: Workspace, asset: Asset,
                  report: MigrationReport) -> None:
    new = NewVersion(
        kind=asset.kind, name=asset.name, version=asset.version,
        content_hash=asset.content_hash, spec=dict(asset.spec), description=asset.description,
        tags=dict(asset.tags), hidden=asset.hidden, curated=False,
        env_hash=getattr(asset, "stored_hash", None), job_id=asset.job_id,
        created_by=asset.created_by,
        secret=source.store.get_secret(asset.kind, asset.name, asset.version))
    _entity, created = target.store.create_version(new)
    if created:
        report.versions_copied += 1
        if asset.archived:
            target.store.set_archived(asset.kind, asset.name, asset.version, True)
    else:
        report.versions_present += 1


def _copy_job(source: Workspace, target: Workspace, job: Job, report: MigrationReport) -> None:
    if not job.done:
        report.left_out.append(f"job {job.id}: still {job.status}")
        return
    try:
        there = target.store.get_job(job.id)  # checked before: copied by an earlier run
    except NotFoundError:
        there = None
    if there is not None:
        root = JobPaths.of(source.artifacts.root, job.id).root
        if TREE_KEY not in there.spec and root.is_dir():  # that run stopped before its files
            publish(target, job.id, root)
        report.jobs_present += 1
        return
    _create_job(source, target, job)
    report.jobs_copied += 1


def _origin(source: Workspace) -> str:
    return json.dumps(hosts.this_host(source.path), sort_keys=True)


def _create_job(source: Workspace, target: Workspace, job: Job) -> None:
    """The job's rows, then its folder as a tree (``files_tree``) for the team's machines."""
    spec = {**job.spec, "migrated_from": _origin(source)}
    spec.setdefault(hosts.KEY, hosts.this_host(source.path))
    fields = job.model_dump(include={"id", "type", "display_name", "experiment", "status",
                                     "parent_id", "step_name", "compute", "environment",
                                     "env_hash", "image", "error", "started_at", "ended_at",
                                     "created_by"})
    io = [{"direction": x.direction, "name": x.name, "type": x.type, "uri": x.uri,
           "value": json.dumps(x.value) if x.value is not None else None,
           **_asset_columns(x.asset)} for x in source.store.job_io(job.id)]
    target.store.create_job({**fields, "spec": spec}, params=source.store.job_params(job.id),
                            io=io)
    target.store.update_job(job.id, created_at=job.created_at)
    metrics = source.store.job_metrics(job.id)
    target.store.add_metrics(job.id, [m.model_dump() for m in metrics])
    if job.result is not None:
        target.store.update_job(job.id, result=job.result)
    root = JobPaths.of(source.artifacts.root, job.id).root
    if root.is_dir():  # records the tree in the job's spec
        publish(target, job.id, root)


def _asset_columns(asset: str | None) -> dict[str, Any]:
    if not asset:
        return {}
    kind, name, version = asset.split(":", 2)
    return {"asset_kind": kind, "asset_name": name, "asset_version": version}

