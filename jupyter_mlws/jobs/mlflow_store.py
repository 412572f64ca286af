"""MLflow logging in jobs: a file tracking store in the job's run folder, read by the host.

A job gets ``MLFLOW_TRACKING_URI=file://<run folder>/mlruns`` (the run folder as the job sees
it: the same path on this machine, in a container and on a Ray cluster's shared storage), so
``mlflow.log_metric``/``log_param``/``log_artifact``/``autolog`` inside it write MLflow's own
file store there, with nothing else installed in the job's environment and no server. The host
reads that store while the job runs (:class:`MlflowIngest`, called with the ``jupyter_mlws.run``
lines) into the job's metrics and parameters, and lists its artifacts as the job's
(:func:`mlflow_artifacts`). Everything there was written by the job: it is read through
:mod:`jupyter_mlws.jobs.safe_files`, never following a link.

Runs without a parent (every ``start_run()`` of the script) are the job's own: their metrics and
parameters keep their names. A nested run's are prefixed with its run name (``fold-1/accuracy``).
A job whose ``environment_variables`` set ``MLFLOW_TRACKING_URI`` keeps it, and is not read.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_mlws.errors import UnsafePathError
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.safe_files import (
    copy_job_tree,
    list_job_dir,
    open_job_file,
    walk_job_files,
)

#: The store's folder inside the job's run folder.
TRACKING_DIR = "mlruns"
#: Variables of the host that must not reach a job whose tracking is the workspace's.
_HOST_ONLY = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
              "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
              "MLFLOW_REGISTRY_URI")
#: The folder name MLflow's file store refuses above a run.
ARTIFACTS_NAME = "artifacts"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_START = re.compile(rb"^start_time: *(\d+)", re.MULTILINE)
_SMALL = 64 * 1024  # tags and parameters are short; a bigger file is not read


def store_folder(run_dir: str | Path) -> Path:
    """The store in a job's run folder (as a path of whoever sees ``run_dir``)."""
    return Path(run_dir) / TRACKING_DIR


def add_tracking_env(env: dict[str, str], job_env: Mapping[str, str], *, cwd: str | None = None,
                     store: str | None = None) -> None:
    """Point MLflow in the job at the file store in its run folder (``env`` is changed).

    ``job_env`` is what the job itself was given (``Launch.env``); when it sets
    ``MLFLOW_TRACKING_URI``, the user's tracking is kept and nothing is added. ``store`` is
    where the job sees the store when that is not its run folder's path (a container mount).
    MLflow's file store refuses a run below a folder named ``artifacts`` (the workspace's
    layout), so without ``store`` such a path is given relative to ``cwd``, the job's working
    folder.
    """
    run_dir = job_env.get("MLWS_RUN_DIR")
    if not run_dir or "MLFLOW_TRACKING_URI" in job_env:
        return
    for key in _HOST_ONLY:
        if key not in job_env:
            env.pop(key, None)
    if store is not None:
        env["MLFLOW_TRACKING_URI"] = Path(store).as_uri()
    else:
        folder = store_folder(run_dir)
        relative = ARTIFACTS_NAME in folder.parts and cwd
        env["MLFLOW_TRACKING_URI"] = (os.path.relpath(folder, cwd) if relative
                                      else folder.as_uri())
    # MLflow 3 refuses a file store unless allowed: it is kept (in maintenance mode) and needs no
    # database driver or migrations in the job's environment
    env["MLFLOW_ALLOW_FILE_STORE"] = job_env.get("MLFLOW_ALLOW_FILE_STORE", "true")


@dataclass(frozen=True)
class MlflowRun:
    """One run found in a job's store."""

    id: str
    path: Path
    name: str
    parent: str | None
    start: int


def _small_text(path: Path, root: Path) -> str | None:
    try:
        with open_job_file(path, root) as f:
            data = f.read(_SMALL + 1)
    except (OSError, UnsafePathError):
        return None
    if len(data) > _SMALL:
        return None
    return data.decode("utf-8", "replace")


def _run(path: Path, root: Path) -> MlflowRun:
    meta = b""
    try:
        with open_job_file(path / "meta.yaml", root) as f:
            meta = f.read(_SMALL)
    except (OSError, UnsafePathError):
        pass
    start = _START.search(meta)
    name = (_small_text(path / "tags" / "mlflow.runName", root) or "").strip()
    parent = (_small_text(path / "tags" / "mlflow.parentRunId", root) or "").strip()
    return MlflowRun(id=path.name, path=path, name=name or path.name, parent=parent or None,
                     start=int(start.group(1)) if start else 0)


def list_runs(paths: JobPaths) -> list[MlflowRun]:
    """The runs in the job's store, the job's own (no parent) first, oldest first."""
    store = store_folder(paths.run)
    runs = []
    for exp, is_dir in list_job_dir(store, paths.root):
        if not is_dir or exp.startswith("."):
            continue
        for name, sub_dir in list_job_dir(store / exp, paths.root):
            if sub_dir and _RUN_ID.match(name):
                runs.append(_run(store / exp / name, paths.root))
    return sorted(runs, key=lambda r: (r.parent is not None, r.start, r.id))


def _points(data: bytes, key: str, seen: set[tuple[str, int, float, int | None]]
            ) -> list[dict[str, Any]]:
    out = []
    for line in data.splitlines():
        parts = line.split()
        try:
            ts, value = int(parts[0]), float(parts[1])
            step = int(parts[2]) if len(parts) >= 3 else None
        except (IndexError, ValueError):
            continue  # not a line MLflow wrote
        if (key, ts, value, step) in seen:
            continue  # MLflow 3 writes a run's points again when it links them to a model
        seen.add((key, ts, value, step))
        if math.isfinite(value):
            out.append({"key": key, "value": value, "step": step,
                        "at": datetime.fromtimestamp(ts / 1000, timezone.utc)})
    return out


@dataclass
class MlflowIngest:
    """What is new in a job's MLflow store since the last call (metric files are read on from
    where the last call stopped)."""

    paths: JobPaths
    _offsets: dict[str, int] = field(default_factory=dict)
    _params: dict[str, str] = field(default_factory=dict)
    _runs: dict[str, MlflowRun] = field(default_factory=dict)
    _seen: set[tuple[str, int, float, int | None]] = field(default_factory=set)

    def _known_runs(self) -> list[MlflowRun]:
        for run in list_runs(self.paths):
            if run.id not in self._runs or self._runs[run.id].name == run.id:
                self._runs[run.id] = run  # its name is read until it is there
        return list(self._runs.values())

    def read(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """``(new metric points, changed parameters)`` in the shapes of the job store."""
        metrics: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        root = self.paths.root
        for run in self._known_runs():
            prefix = "" if run.parent is None else f"{run.name}/"
            for rel in walk_job_files(run.path / "metrics", root):
                metrics += self._new_points(run.path / "metrics" / rel, prefix + rel)
            for rel in walk_job_files(run.path / "params", root):
                value = _small_text(run.path / "params" / rel, root)
                key = prefix + rel
                if value is not None and self._params.get(key) != value:
                    self._params[key] = params[key] = value
        return metrics, params

    def _new_points(self, path: Path, key: str) -> list[dict[str, Any]]:
        offset = self._offsets.get(str(path), 0)
        try:
            with open_job_file(path, self.paths.root) as f:
                f.seek(offset)
                data = f.read()
        except (OSError, UnsafePathError):
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []  # a line still being written
        self._offsets[str(path)] = offset + end + 1
        return _points(data[:end + 1], key, self._seen)


def artifact_dirs(paths: JobPaths) -> list[tuple[str, Path]]:
    """``(name shown, folder)`` of the job's MLflow artifacts: the first run of the job at
    ``mlflow``, other runs at ``mlflow/runs/<run id>``, logged models at
    ``mlflow/models/<model id>``."""
    runs = list_runs(paths)
    found = [("mlflow" if i == 0 else f"mlflow/runs/{r.id}", r.path / "artifacts")
             for i, r in enumerate(runs)]
    store = store_folder(paths.run)
    for exp, is_dir in list_job_dir(store, paths.root):
        if is_dir and not exp.startswith("."):
            for model, sub_dir in list_job_dir(store / exp / "models", paths.root):
                if sub_dir:
                    found.append((f"mlflow/models/{model}",
                                  store / exp / "models" / model / "artifacts"))
    return found


def mlflow_artifacts(paths: JobPaths) -> list[str]:
    """The files the job logged as MLflow artifacts, by the names :func:`artifact_dirs` gives."""
    return [f"{name}/{rel}" for name, folder in artifact_dirs(paths)
            for rel in walk_job_files(folder, paths.root)]


def copy_mlflow_artifacts(paths: JobPaths, dest: Path) -> None:
    """Copy the job's MLflow artifacts into ``dest/mlflow/...`` (real files only, no links)."""
    for name, folder in artifact_dirs(paths):
        if list_job_dir(folder, paths.root):
            copy_job_tree(folder, Path(dest) / name, paths.root)


__all__ = ["MlflowIngest", "MlflowRun", "add_tracking_env", "artifact_dirs",
           "copy_mlflow_artifacts", "list_runs", "mlflow_artifacts", "store_folder"]
