"""Outputs that name a datastore path, as Azure ML writes them::

    outputs:
      model:
        type: uri_folder
        path: azureml://datastores/workspaceblobstore/paths/outputs/${{name}}/${{output_name}}/

The job writes the output in its own folder as usual; when it completes, the host copies it
(real files only, no links) to that path of the datastore and records the output there, so it
is never silently somewhere else. ``${{name}}`` is the job's name (its id), ``${{output_name}}``
the output's. A ``local`` datastore's folder is written; a remote one is refused at submission.
What is planned is kept in the job's folder (``datastore_outputs.json``, the host's).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.errors import SpecError, UnsafePathError, ValidationError
from jupyter_mlws.fileio import write_json_atomic
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.safe_files import copy_job_tree, open_job_file

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace

PLAN_FILE = "datastore_outputs.json"


def _expand(path: str, job_name: str, output_name: str) -> str:
    return path.replace("${{name}}", job_name).replace("${{output_name}}", output_name)


def plan_datastore_outputs(ws: Workspace, outputs: Mapping[str, Any] | None,
                           paths: JobPaths) -> dict[str, dict[str, str]]:
    """For each output whose ``path`` is a datastore URI: where it goes (``uri`` with the
    placeholders filled in, ``folder`` on this machine, ``type``). Written to the job's folder;
    raises :class:`SpecError` for a datastore that is missing or not local."""
    from jupyter_mlws.operations.data import parse_datastore_uri

    plan: dict[str, dict[str, str]] = {}
    for name, spec in (outputs or {}).items():
        path = spec.get("path") if isinstance(spec, Mapping) else None
        if not isinstance(path, str) or "://datastores/" not in path:
            continue
        uri = _expand(path, paths.root.name, name)
        try:
            parsed = parse_datastore_uri(uri)
        except UnsafePathError as exc:
            raise SpecError(str(exc), field=f"outputs.{name}.path") from None
        if parsed is None:
            raise SpecError(f"{path!r} is not a datastore path",
                            field=f"outputs.{name}.path",
                            hint="Write azureml://datastores/<datastore>/paths/<path>.")
        store, rel = parsed
        plan[name] = {"uri": uri, "folder": str(_folder(ws, store, rel, name)),
                      "type": str(spec.get("type") or "uri_folder")}
    if plan:
        write_json_atomic(paths.root / PLAN_FILE, plan)
    return plan


def _folder(ws: Workspace, store: str, rel: str, output: str) -> Path:
    from jupyter_mlws.errors import AssetNotFoundError

    try:
        if store == ws.datastores.DEFAULT_BLOBSTORE:
            ws.datastores.ensure_default_blobstore()
        ds = ws.datastores.get(store)
    except AssetNotFoundError:
        raise SpecError(f"the output {output!r} names the datastore {store!r}, which does not "
                        "exist", field=f"outputs.{output}.path",
                        hint=f"Create it (`mlws datastore create -n {store} --path DIR`) or "
                        "write to workspaceblobstore.") from None
    if ds.type != "local":
        raise SpecError(f"the output {output!r} names the datastore {store!r}, which is not a "
                        "folder on this machine: job outputs are written only to local "
                        "datastores", field=f"outputs.{output}.path",
                        hint="Write it to workspaceblobstore (or another local datastore) and "
                        "copy it from there.")
    root = Path(ws.datastores.root(store))
    return root / rel if rel not in ("", ".") else root


def datastore_plan(paths: JobPaths) -> dict[str, dict[str, str]]:
    """What :func:`plan_datastore_outputs` wrote for the job (``{}`` when nothing)."""
    try:
        data = json.loads((paths.root / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def deliver_datastore_outputs(paths: JobPaths) -> tuple[dict[str, str], list[str]]:
    """Copy each planned output of a completed job to its datastore folder. Returns output
    name -> the datastore URI it is now at, and what could not be written (one line each).
    A ``uri_file`` output lands at the path itself."""
    done: dict[str, str] = {}
    failed: list[str] = []
    for name, where in datastore_plan(paths).items():
        src = paths.outputs / name
        dest = Path(where["folder"])
        try:
            if where.get("type") == "uri_file":
                _copy_file(src, dest, paths.root)
            else:
                copy_job_tree(src, dest, paths.root)
        except FileNotFoundError:
            failed.append(f"the job wrote no output {name!r} for {where['uri']}")
            continue
        except (OSError, UnsafePathError, ValidationError) as exc:
            failed.append(f"the output {name!r} could not be written to {where['uri']}: "
                          f"{getattr(exc, 'strerror', None) or exc}")
            continue
        done[name] = where["uri"]
    return done, failed


def _copy_file(src: Path, dest: Path, root: Path) -> None:
    with open_job_file(src, root) as f:  # the job wrote it: no link is followed
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as out:
            shutil.copyfileobj(f, out)


__all__ = ["datastore_plan", "deliver_datastore_outputs", "plan_datastore_outputs"]
