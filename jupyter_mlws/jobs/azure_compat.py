"""What Azure ML CLI v2 job YAML means on a local workspace.

Cloud compute names map to local computes (``compute_map`` in ``workspace.yaml``), fields that
mean nothing locally are dropped with a note, cloud-only job types are refused by name,
``https://`` inputs are downloaded into the workspace cache, and every job's working directory
gets the ``./outputs`` and ``./logs`` folders whose contents are kept with the job.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from jupyter_mlws.errors import (
    AssetNotFoundError,
    CloudOnlyError,
    CloudStorageError,
    DownloadError,
)

if TYPE_CHECKING:
    from jupyter_mlws.jobs.paths import JobPaths
    from jupyter_mlws.workspace import Workspace

#: Job (or step) ``type`` values that only the Azure ML service runs.
CLOUD_ONLY_TYPES = {"automl": "AutoML", "spark": "Spark", "data_import": "DataImport",
                    "import": "DataImport", "parallel": "Parallel"}
#: Fields of a command job or step that have no meaning on a local compute.
LOCAL_NOOP_FIELDS = ("services", "resources", "distribution", "identity", "queue_settings")
CLOUD_STORAGE_SCHEMES = ("wasbs://", "wasb://", "abfss://", "abfs://", "adl://")
#: Where ``./logs`` of a job's working directory is kept (under the job's ``logs`` folder).
DOWNLOAD_TIMEOUT_S = 60.0
_COMPUTE_PREFIXES = ("azureml:", "mlws:")


# --- what the YAML asks for ------------------------------------------------------------------------

def refuse_cloud_only(data: Mapping[str, Any], *, where: str) -> None:
    """Refuse AutoML, Spark, DataImport, Parallel and Schedule specs, naming them."""
    schema = str(data.get("$schema") or "").lower()
    kind = str(data.get("type") or "").lower()
    name = CLOUD_ONLY_TYPES.get(kind)
    if name is None and ("schedule" in schema or ("trigger" in data and "create_job" in data)):
        name = "A Schedule"
    if name is None and ("dataimport" in schema or isinstance(data.get("source"), Mapping)):
        name = "DataImport"
    if name is None:
        for key, label in (("automl", "AutoML"), ("spark", "Spark"), ("parallel", "Parallel")):
            if f"/{key}" in schema:
                name = label
    if name is not None:
        article = "An" if name[0] in "AEIOU" else "A"
        label = name if name.startswith("A ") else f"{article} {name} job"
        raise CloudOnlyError(
            f"{where}: {label} runs only in Azure ML; it cannot run on a local workspace.",
            hint="Submit it with `az ml job create` to Azure ML, or rewrite it as a command job "
            "(a script that does the same work).")


def drop_local_noops(data: dict[str, Any], *, where: str) -> tuple[dict[str, Any], list[str]]:
    """``data`` without the fields that mean nothing locally, and a note for each."""
    notes = []
    for key in LOCAL_NOOP_FIELDS:
        if key in data:
            value = data.pop(key)
            detail = ""
            if key == "resources" and isinstance(value, Mapping) and value.get("instance_count"):
                detail = f" (instance_count {value['instance_count']}: one process runs here)"
            notes.append(f"warning: {where}: '{key}' means nothing on a local compute and is "
                         f"ignored{detail}")
    return data, notes


def compute_name(value: str | None) -> str | None:
    """``azureml:cpu-cluster`` -> ``cpu-cluster``."""
    if not value:
        return None
    for prefix in _COMPUTE_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def map_compute(ws: Workspace, value: str | None) -> tuple[str, str | None]:
    """A compute named in Azure YAML -> (the local compute, a note for the job's log or None).

    A compute of that name here wins; else ``compute_map`` of ``workspace.yaml`` (``'*'``
    maps every other name); else ``local``.
    """
    name = compute_name(value)
    if name is None:
        return "local", None
    known = ws.computes.names()
    if name in known:
        return name, None
    table = ws.settings.compute_map
    target = table.get(name) or table.get("*")
    if target:
        if target not in known:
            raise AssetNotFoundError(
                f"compute_map in workspace.yaml maps {name!r} to {target!r}, which is not a "
                "compute of this workspace.",
                hint=f"Create it (`mlws compute create {target}`) or change the map. Known "
                f"computes: {', '.join(known)}.")
        return target, f"note: compute {name!r} runs on {target!r} (compute_map in workspace.yaml)"
    return "local", (f"note: compute {name!r} does not exist here, so the job runs on 'local' "
                     "(map cloud compute names with compute_map in workspace.yaml)")


# --- inputs ----------------------------------------------------------------------------------------

def refuse_cloud_storage(name: str, uri: str) -> None:
    if uri.lower().startswith(CLOUD_STORAGE_SCHEMES):
        raise CloudStorageError(
            f"The input {name!r} names {uri!r}: cloud storage is not reachable offline;",
            hint="register a local copy with `mlws data create -n NAME -p LOCAL_PATH` and use "
            "`path: azureml:NAME@latest` in the YAML.")


def refuse_cloud_inputs(data: Mapping[str, Any]) -> None:
    """Refuse cloud storage inputs of a job spec (and of its steps) before it is validated."""
    steps = data.get("jobs")
    for spec in [data, *(steps.values() if isinstance(steps, Mapping) else [])]:
        inputs = spec.get("inputs") if isinstance(spec, Mapping) else None
        for name, value in (inputs.items() if isinstance(inputs, Mapping) else []):
            path = value.get("path") if isinstance(value, Mapping) else value
            if isinstance(path, str):
                refuse_cloud_storage(str(name), path)


def download_input(ws: Workspace, name: str, url: str, typ: str | None) -> Path:
    """An ``http(s)://`` input as a local path: downloaded once per URL and ETag into the
    workspace cache (a ``uri_folder`` input is the folder holding the file)."""
    from jupyter_mlws.assets.base import refuse_userinfo

    refuse_userinfo(url, what=f"the input {name!r}")
    cache = ws.cache_dir / "downloads"
    tag = _etag(url)
    if tag:
        entry = cache / _key(url, tag)
        if entry.is_dir() and any(entry.iterdir()):
            return _as_input(entry, typ)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=cache))
    try:
        file_name = _file_name(url)
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, \
                    open(tmp / file_name, "wb") as out:
                shutil.copyfileobj(resp, out)
                tag = tag or resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                      else getattr(exc, "reason", None) or exc)
            raise DownloadError(f"The input {name!r} could not be downloaded from {url!r}: "
                                f"{reason}.", hint="Check the URL, or download the file and "
                                "give its local path.") from None
        if not tag:  # no validator: keep it by content, download again next time
            tag = "sha256:" + hashlib.sha256((tmp / file_name).read_bytes()).hexdigest()
        entry = cache / _key(url, tag)
        try:
            os.replace(tmp, entry)
        except OSError:  # another job stored the same download meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        return _as_input(entry, typ)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _etag(url: str) -> str | None:
    try:
        req = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            return resp.headers.get("ETag") or resp.headers.get("Last-Modified")
    except (urllib.error.URLError, OSError, ValueError):
        return None  # the GET says what is wrong


def _key(url: str, tag: str) -> str:
    return hashlib.sha256(f"{url}\n{tag}".encode()).hexdigest()[:32]


def _file_name(url: str) -> str:
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    safe = "".join(c for c in name if c.isalnum() or c in "._-").lstrip(".")
    return safe or "download"


def _as_input(entry: Path, typ: str | None) -> Path:
    if typ in ("uri_folder", "mltable"):
        return entry
    return next(p for p in sorted(entry.iterdir()) if p.is_file())


# --- the working directory -------------------------------------------------------------------------

def lay_out_conventions(paths: JobPaths, cwd: Path) -> None:
    """``cwd/outputs`` and ``cwd/logs`` lead into the job's kept ``outputs`` and ``logs/user``
    folders (what the code snapshot had there is moved in first)."""
    for name, target in (("outputs", paths.outputs), ("logs", paths.user_logs)):
        target.mkdir(parents=True, exist_ok=True)
        link = cwd / name
        if link.is_symlink() or (link.exists() and not link.is_dir()):
            continue
        if link.is_dir():
            shutil.copytree(link, target, dirs_exist_ok=True)
            shutil.rmtree(link)
        cwd.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(target, cwd), target_is_directory=True)


def kept_files(paths: JobPaths) -> list[str]:
    """The files a job kept in ``outputs/`` and ``logs/user/``, relative to the job folder."""
    found: list[str] = []
    for top in (paths.outputs, paths.user_logs):
        if top.is_dir():
            found += sorted(str(p.relative_to(paths.root)) for p in top.rglob("*")
                            if p.is_file())
    from jupyter_mlws.jobs.mlflow_store import mlflow_artifacts

    return found + mlflow_artifacts(paths)


@contextmanager
def with_includes(code: Path | None, includes: list[str]) -> Iterator[Path | None]:
    """The code folder with each of ``additional_includes`` copied into its root (a temporary
    folder, gone on exit); ``code`` itself when there is nothing to add."""
    if not includes:
        yield code
        return
    from jupyter_mlws.errors import SpecError
    from jupyter_mlws.operations.components import ALWAYS_IGNORED

    skip = shutil.ignore_patterns(*(p.rstrip("/") for p in ALWAYS_IGNORED))
    with tempfile.TemporaryDirectory(prefix="mlws-code-") as tmp:
        merged = Path(tmp) / "code"
        if code is not None:
            shutil.copytree(code, merged, ignore=skip, symlinks=True)
        merged.mkdir(exist_ok=True)
        for item in includes:
            src = Path(item)
            if not src.exists():
                raise SpecError(f"the additional include {item!r} does not exist",
                                field="additional_includes")
            if src.is_dir():
                shutil.copytree(src, merged / src.name, ignore=skip, dirs_exist_ok=True)
            else:
                shutil.copy2(src, merged / src.name)
        yield merged
