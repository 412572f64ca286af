"""``ws.jobs``: submit notebooks, commands and pipelines; follow, cancel and inspect them.

Submission checks everything it can (the notebook, its parameters, names of the environment,
compute and inputs), snapshots the code, binds inputs, writes ``launch.json`` for the runner,
records the job as Queued, starts the detached runner and returns at once.
"""

from __future__ import annotations

import builtins
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.assets.base import looks_like_ref, parse_ref
from jupyter_mlws.assets.component import resolve_command
from jupyter_mlws.assets.environment import Environment, EnvironmentSpec
from jupyter_mlws.errors import (
    AssetNotFoundError,
    ConflictError,
    MlwsError,
    NotFoundError,
    SpecError,
    UnsafePathError,
    ValidationError,
)
from jupyter_mlws.jobs.logs import log_size, read_log_text
from jupyter_mlws.jobs.model import ACTIVE_VALUES, TERMINAL_VALUES, Job, JobEvent, JobIO, Metric
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.runner import is_locked
from jupyter_mlws.jobs.safe_files import check_job_path, copy_job_tree, read_job_bytes

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace

#: A runner that has not taken its lock this long after submission never started.
RUNNER_START_GRACE_S = 120.0
SNAPSHOT_MAX_FILES = 20_000
_WORDS = ("amber", "brisk", "calm", "deft", "eager", "fair", "gentle", "hardy", "keen", "lucid",
          "merry", "noble", "plucky", "quick", "rapid", "sunny", "tidy", "vivid", "witty", "zesty")
_NOUNS = ("otter", "falcon", "maple", "comet", "harbor", "lynx", "pebble", "river", "spruce",
          "tiger", "willow", "yak", "badger", "cedar", "dune", "ember", "fjord", "heron")


def new_job_id() -> str:
    """Readable and unique: ``keen_otter_k3v9x2``."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    tail = "".join(secrets.choice(alphabet) for _ in range(6))
    return f"{secrets.choice(_WORDS)}_{secrets.choice(_NOUNS)}_{tail}"


def package_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def _parse_job_uri(uri: str) -> tuple[str, str] | None:
    for prefix in ("mlws://jobs/", "azureml://jobs/"):
        if uri.startswith(prefix):
            parts = uri[len(prefix):].strip("/").split("/")
            if len(parts) >= 3 and parts[1] == "outputs" and ".." not in parts:
                return parts[0], "/".join(parts[2:])
            raise ValidationError(f"{uri!r} is not a job output URI.",
                                  hint="Use mlws://jobs/<id>/outputs/<name>.")
    return None


class JobOperations:
    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._store = workspace.store

    # --- paths ---------------------------------------------------------------------------------

    def paths(self, job_id: str) -> JobPaths:
        if not job_id or "/" in job_id or ".." in job_id:
            raise ValidationError(f"{job_id!r} is not a job id.")
        return JobPaths.of(self._ws.artifacts.root, job_id)

    def output_path(self, uri: str) -> tuple[str, Path]:
        """``mlws://jobs/<id>/outputs/<name>`` -> (job id, the folder on disk)."""
        parsed = _parse_job_uri(uri)
        if parsed is None:
            raise ValidationError(f"{uri!r} is not a job output URI.")
        job_id, name = parsed
        job = self.get(job_id)
        path = self.paths(job.id).outputs / name
        if not path.exists() and not path.is_symlink():
            known = [io.name for io in self.io(job.id) if io.direction == "output"]
            raise NotFoundError(
                f"Job {job_id} has no output {name!r}"
                + (" (it has not finished)" if not job.done else "") + ".",
                hint=f"Its outputs: {', '.join(known) or 'none'}.",
            )
        if not job.done:  # a running job could swap a file for a link while it is read
            raise ConflictError(f"Job {job.id} is still {job.status}: its outputs can be used "
                                "once it has ended.",
                                hint=f"Follow it to its end with `mlws job stream {job.id}`.")
        return job.id, check_job_path(path, self.paths(job.id).root)

    # --- submission -----------------------------------------------------------------------------

    def _compute(self, name: str | None) -> Any:
        try:
            return self._ws.computes.get(name or "local")
        except AssetNotFoundError:
            known = ", ".join(self._ws.computes.names())
            raise AssetNotFoundError(f"No compute named {name!r}.",
                                     hint=f"Known computes: {known}.") from None

    def _environment(self, environment: Any) -> Environment | None:
        if environment is None:
            return None
        if isinstance(environment, Environment):
            return environment
        if isinstance(environment, (EnvironmentSpec, dict)):
            return self._ws.environments.register_anonymous(environment)
        try:
            return self._ws.environments.get(str(environment))
        except AssetNotFoundError:
            known = ", ".join(self._ws.environments.names())
            raise AssetNotFoundError(f"No environment {environment!r}.",
                                     hint=f"Known environments: {known}.") from None

    def _snapshot(self, folder: Path, paths: JobPaths) -> dict[str, Any]:
        """Store the code folder (honouring .gitignore/.mlwsignore) and lay it out for the run."""
        from jupyter_mlws.artifacts import StoredArtifact, iter_folder
        from jupyter_mlws.operations.components import code_ignore_spec

        ignore = code_ignore_spec(folder)
        count = sum(1 for _ in iter_folder(folder, ignore))
        if count > SNAPSHOT_MAX_FILES:
            raise ValidationError(
                f"The code folder {str(folder)!r} has {count} files (more than "
                f"{SNAPSHOT_MAX_FILES}) to snapshot.",
                hint="List what the job does not need in a .mlwsignore file there, or give "
                "a smaller code folder.",
            )
        stored = self._ws.artifacts.put_path(folder, ignore=ignore)
        art = StoredArtifact.from_dict(stored.to_dict())
        self._ws.artifacts.materialize(art, paths.code)
        return stored.to_dict()

    def _bind_inputs(self, inputs: Mapping[str, Any] | None, paths: JobPaths
                     ) -> tuple[dict[str, Any], builtins.list[dict[str, Any]], builtins.list[str]]:
        """Input name -> value for the command; lineage rows; host paths to mount read-only."""
        values: dict[str, Any] = {}
        lineage: list[dict[str, Any]] = []
        mounts: list[str] = []
        for name, given in (inputs or {}).items():
            spec = given if isinstance(given, Mapping) else {"value": given}
            typ = spec.get("type")
            raw = spec.get("path", spec.get("value"))
            if raw is None:
                values[name] = spec.get("default")
                continue
            text = str(raw)
            untyped_literal = (typ is None and "path" not in spec and isinstance(raw, str)
                               and not looks_like_ref(text) and "://" not in text
                               and not Path(text).expanduser().exists())
            if (isinstance(raw, (bool, int, float)) or untyped_literal
                    or typ in ("string", "integer", "number", "boolean")):
                values[name] = raw
                lineage.append({"name": name, "type": typ or _primitive_type(raw),
                                "value": json.dumps(raw)})
                continue
            if looks_like_ref(text):
                value, row = self._bind_asset(name, text, typ, paths)
                values[name] = value
                lineage.append(row)
                mounts.append(value)
                continue
            job_out = _parse_job_uri(text)
            if job_out is not None:
                src_job, out_path = self.output_path(text)
                values[name] = str(out_path)
                mounts.append(str(out_path))
                lineage.append({"name": name, "type": typ or "uri_folder", "uri": text})
                continue
            if text.startswith(("http://", "https://")):
                values[name] = text
                lineage.append({"name": name, "type": typ or "uri_file", "uri": text})
                continue
            from jupyter_mlws.operations.data import parse_datastore_uri

            ds = parse_datastore_uri(text)
            local = Path(text[len("file://"):] if text.startswith("file://") else text)
            if ds is not None:
                local = Path(self._ws.datastores.root(ds[0])) / ds[1]
            if not local.exists():
                raise NotFoundError(f"The input {name!r} names {text!r}, which does not exist.")
            local = local.resolve()
            values[name] = str(local)
            mounts.append(str(local))
            lineage.append({"name": name, "type": typ or ("uri_file" if local.is_file()
                                                          else "uri_folder"), "uri": text})
        return values, lineage, mounts

    def _bind_asset(self, name: str, ref: str, typ: str | None, paths: JobPaths
                    ) -> tuple[str, dict[str, Any]]:
        parsed = parse_ref(ref)
        kind = "model" if typ in ("custom_model", "mlflow_model", "triton_model") else "data"
        ops = self._ws.models if kind == "model" else self._ws.data
        try:
            asset = ops.get(parsed.name, parsed.version)
        except AssetNotFoundError:
            other = self._ws.models if kind == "data" else self._ws.data
            try:
                asset = other.get(parsed.name, parsed.version)
                kind = asset.kind
            except AssetNotFoundError:
                known = ", ".join(self._ws.data.names() + self._ws.models.names())
                raise AssetNotFoundError(
                    f"The input {name!r} names {ref!r}, which is not a registered data or model.",
                    hint=f"Known data and models: {known or 'none'}.") from None
        row = {"name": name, "type": typ or asset.spec.get("type", "uri_folder"),
               "asset_kind": kind, "asset_name": asset.name, "asset_version": asset.version}
        art = asset.spec.get("artifact")
        if art:
            from jupyter_mlws.artifacts import StoredArtifact

            stored = StoredArtifact.from_dict(art)
            dest = paths.inputs / name
            target = dest / stored.name if stored.kind == "file" else dest
            self._ws.artifacts.materialize(stored, target)
            value = str(target)
        else:
            uri = str(asset.spec.get("path"))
            row["uri"] = uri
            from jupyter_mlws.operations.data import parse_datastore_uri

            ds = parse_datastore_uri(uri)
            if ds is not None:
                value = str(Path(self._ws.datastores.root(ds[0])) / ds[1])
            elif uri.startswith("file://"):
                value = uri[len("file://"):]
            else:
                value = uri
        return value, row

    def _outputs(self, outputs: Mapping[str, Any] | None, paths: JobPaths) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, spec in (outputs or {}).items():
            (paths.outputs / name).mkdir(parents=True, exist_ok=True)
            typ = spec.get("type") if isinstance(spec, Mapping) else None
            out[name] = typ or "uri_folder"
        return out

    def _base_env(self, job_id: str, paths: JobPaths, values: Mapping[str, Any],
                  outputs: Mapping[str, str], env: Environment | None,
                  extra: Mapping[str, str] | None) -> dict[str, str]:
        e: dict[str, str] = {
            "MLWS_JOB_ID": job_id,
            "MLWS_RUN_DIR": str(paths.run),
            "MLWS_OUTPUTS_DIR": str(paths.outputs),
            "PYTHONUNBUFFERED": "1",
        }
        for name in outputs:
            e[f"MLWS_OUTPUT_{name.upper()}"] = str(paths.outputs / name)
        for name, value in values.items():
            if value is not None:
                e[f"MLWS_INPUT_{name.upper()}"] = str(value)
        if env is not None:
            e.update(env.definition().environment_variables)
        e.update(extra or {})
        return e

    def _pythonpath(self) -> str:
        """A folder holding only this package, for job processes on this machine."""
        lib = self._ws.cache_dir / "lib"
        link = lib / "jupyter_mlws"
        if not link.exists():
            lib.mkdir(parents=True, exist_ok=True)
            tmp = lib / f".link-{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(package_dir(), target_is_directory=True)
            os.replace(tmp, link)
        return str(lib)

    def _launch(self, *, job_id: str, kind: str, compute: Any, env: Environment | None,
                argv: list[str], cwd: Path, env_vars: dict[str, str], mounts: list[str],
                outputs: Mapping[str, str], timeout: float | None, paths: JobPaths
                ) -> dict[str, Any]:
        from jupyter_mlws.compute import target_for

        launch: dict[str, Any] = {
            "job_id": job_id, "workspace": str(self._ws.path), "kind": kind,
            "compute": compute.name, "compute_kind": compute.type,
            "max_concurrent": compute.spec.get("max_concurrent_jobs", 1),
            "slot_dir": str(self._ws.cache_dir / "slots" / _slot_key(self._ws.path, compute.name)),
            "environment": env.ref if env else None, "env_hash": env.env_hash if env else None,
            "argv": argv, "cwd": str(cwd), "env": env_vars, "mounts": mounts,
            "outputs": dict(outputs), "timeout": timeout, "package_dir": str(package_dir()),
            "pythonpath": self._pythonpath(), "ready": False,
        }
        if kind != "pipeline":
            runtime = target_for(self._ws, compute).plan(launch)
            if runtime is not None:
                launch.update(ready=True, python=runtime.python, image=runtime.image)
        return launch

    def _create_and_start(self, *, job: dict[str, Any], launch: dict[str, Any], paths: JobPaths,
                          params: Mapping[str, Any], lineage: list[dict[str, Any]]) -> Job:
        tmp = paths.launch.with_suffix(".tmp")
        tmp.write_text(json.dumps(launch, indent=1))
        os.replace(tmp, paths.launch)
        created = self._store.create_job(job, params=params,
                                         io=[{"direction": "input", **row} for row in lineage])
        try:
            self._start_runner(paths)
        except OSError as exc:
            self._store.transition_job(created.id, "Failed",
                                       message=f"the runner could not start: {exc}",
                                       error=f"the runner could not start: {exc}")
            raise MlwsError(f"The job's runner could not start: {exc}") from None
        return created

    @staticmethod
    def _start_runner(paths: JobPaths) -> None:
        with open(paths.logs / "runner.log", "ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "jupyter_mlws.jobs.runner", str(paths.root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                    p for p in (str(package_dir().parent), os.environ.get("PYTHONPATH")) if p)},
            )

    def _record(self, *, job_id: str, kind: str, compute: Any, env: Environment | None,
                spec: dict[str, Any], display_name: str | None, experiment: str | None,
                parent_id: str | None = None, step_name: str | None = None) -> dict[str, Any]:
        from jupyter_mlws.operations.base import _user

        return {
            "id": job_id, "type": kind, "display_name": display_name,
            "experiment": experiment or "default", "status": "Queued",
            "parent_id": parent_id, "step_name": step_name, "compute": compute.name,
            "environment": env.ref if env else None, "env_hash": env.env_hash if env else None,
            "spec": spec, "created_by": _user(),
        }

    def submit_notebook(
        self,
        notebook: str | Path,
        parameters: Mapping[str, Any] | None = None,
        *,
        environment: Any = None,
        compute: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        code: str | Path | None = None,
        display_name: str | None = None,
        experiment: str | None = None,
        timeout: float | None = None,
        environment_variables: Mapping[str, str] | None = None,
        _parent: tuple[str, str] | None = None,
    ) -> Job:
        """Run a notebook with papermill; returns at once with the Queued job.

        ``parameters`` are injected after the cell tagged ``parameters`` (types kept) and must
        be names that cell defines. The notebook's folder (or ``code``) is snapshotted and is the
        working directory of the run.
        """
        nb_path = Path(notebook).expanduser().resolve()
        nb = _read_notebook(nb_path)
        params = dict(parameters or {})
        _check_parameters(nb_path, params)
        comp = self._compute(compute)
        env = self._environment(environment)
        job_id = new_job_id()
        paths = self.paths(job_id)
        paths.make()
        try:
            folder = Path(code).expanduser().resolve() if code else nb_path.parent
            snapshot = self._snapshot(folder, paths)
            shutil.copyfile(nb_path, paths.notebook_in)
            values, lineage, mounts = self._bind_inputs(inputs, paths)
            outs = self._outputs(outputs, paths)
            paths.params_file.write_text(json.dumps(params, default=str))
            try:
                rel = nb_path.relative_to(folder)
                cwd = (paths.code / rel).parent
            except ValueError:
                cwd = paths.code
            argv = ["{python}", "-m", "jupyter_mlws.jobs.nbrun", str(paths.notebook_in),
                    str(paths.notebook_out), str(paths.params_file), str(paths.result)]
            env_vars = self._base_env(job_id, paths, values, outs, env, environment_variables)
            if values:  # an input whose name the parameters cell defines is injected too
                declared = notebook_parameters(nb_path)
                for key, value in values.items():
                    if key in declared and key not in params:
                        params[key] = value
            paths.params_file.write_text(json.dumps(params, default=str))
            launch = self._launch(job_id=job_id, kind="notebook", compute=comp, env=env,
                                  argv=argv, cwd=cwd, env_vars=env_vars, mounts=mounts,
                                  outputs=outs, timeout=timeout, paths=paths)
            spec = {"notebook": str(nb_path), "parameters": params, "code": str(folder),
                    "snapshot": snapshot, "inputs": _jsonable(inputs), "outputs": outs,
                    "timeout": timeout, "kernel": (nb.get("metadata", {}).get("kernelspec")
                                                   or {}).get("name")}
            job = self._record(job_id=job_id, kind="notebook", compute=comp, env=env, spec=spec,
                               display_name=display_name or nb_path.stem, experiment=experiment,
                               parent_id=_parent[0] if _parent else None,
                               step_name=_parent[1] if _parent else None)
        except BaseException:
            shutil.rmtree(paths.root, ignore_errors=True)
            raise
        return self._create_and_start(job=job, launch=launch, paths=paths, params=params,
                                      lineage=lineage)

    def submit_command(
        self,
        command: str,
        *,
        code: str | Path | None = None,
        environment: Any = None,
        compute: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        display_name: str | None = None,
        experiment: str | None = None,
        timeout: float | None = None,
        environment_variables: Mapping[str, str] | None = None,
        _parent: tuple[str, str] | None = None,
    ) -> Job:
        """Run a shell command; ``${{inputs.x}}``, ``${{outputs.y}}`` and ``$[[...]]`` are
        resolved as the Azure ML CLI v2 does."""
        comp = self._compute(compute)
        env = self._environment(environment)
        from jupyter_mlws.assets.component import InputSpec, OutputSpec, check_command

        declared_in = {k: InputSpec(type=_input_type(v), optional=_optional(v))
                       for k, v in (inputs or {}).items()}
        declared_out = {k: OutputSpec(type=(v or {}).get("type", "uri_folder")
                                      if isinstance(v, Mapping) else "uri_folder")
                        for k, v in (outputs or {}).items()}
        try:
            check_command(command, declared_in, declared_out)
        except ValueError as exc:
            raise SpecError(str(exc), field="command") from None
        job_id = new_job_id()
        paths = self.paths(job_id)
        paths.make()
        try:
            snapshot = None
            cwd = paths.code
            if code:
                snapshot = self._snapshot(Path(code).expanduser().resolve(), paths)
            else:
                paths.code.mkdir(parents=True, exist_ok=True)
            values, lineage, mounts = self._bind_inputs(inputs, paths)
            outs = self._outputs(outputs, paths)
            resolved = resolve_command(command, values,
                                       {k: str(paths.outputs / k) for k in outs})
            env_vars = self._base_env(job_id, paths, values, outs, env, environment_variables)
            launch = self._launch(job_id=job_id, kind="command", compute=comp, env=env,
                                  argv=["/bin/sh", "-c", resolved], cwd=cwd, env_vars=env_vars,
                                  mounts=mounts, outputs=outs, timeout=timeout, paths=paths)
            spec = {"command": command, "resolved_command": resolved,
                    "code": str(code) if code else None, "snapshot": snapshot,
                    "inputs": _jsonable(inputs), "outputs": outs, "timeout": timeout}
            job = self._record(job_id=job_id, kind="command", compute=comp, env=env, spec=spec,
                               display_name=display_name, experiment=experiment,
                               parent_id=_parent[0] if _parent else None,
                               step_name=_parent[1] if _parent else None)
        except BaseException:
            shutil.rmtree(paths.root, ignore_errors=True)
            raise
        params = {row["name"]: json.loads(row["value"]) for row in lineage if "value" in row}
        return self._create_and_start(job=job, launch=launch, paths=paths, params=params,
                                      lineage=lineage)

    def submit_pipeline(self, spec: Any, *, base_dir: Path | None = None,
                        compute: str | None = None, experiment: str | None = None) -> Job:
        """Run a pipeline: its steps become child jobs, run in dependency order."""
        from jupyter_mlws.assets.job import PipelineJobSpec
        from jupyter_mlws.jobs.pipeline import step_order

        pipe = spec if isinstance(spec, PipelineJobSpec) else PipelineJobSpec.model_validate(spec)
        step_order(pipe)  # refuses cycles and unknown steps before anything runs
        comp = self._compute(compute or pipe.compute)
        job_id = new_job_id()
        paths = self.paths(job_id)
        paths.make()
        data = pipe.model_dump(mode="json", exclude_none=True)
        data["base_dir"] = str(base_dir or Path.cwd())
        launch = self._launch(job_id=job_id, kind="pipeline", compute=comp, env=None, argv=[],
                              cwd=paths.root, env_vars={}, mounts=[], outputs={},
                              timeout=None, paths=paths)
        job = self._record(job_id=job_id, kind="pipeline", compute=comp, env=None, spec=data,
                           display_name=pipe.display_name, experiment=experiment
                           or pipe.experiment_name)
        return self._create_and_start(job=job, launch=launch, paths=paths, params={},
                                      lineage=[])

    def create_from_file(self, path: str | Path, **overrides: Any) -> Job:
        """Submit a job from Azure ML CLI v2 YAML (commandJob or pipelineJob)."""
        from jupyter_mlws.assets.job import CommandJobSpec, PipelineJobSpec
        from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec

        p = Path(path)
        data, index = load_yaml(p)
        if not isinstance(data, dict):
            raise SpecError("expected a mapping of fields", file=str(p), line=1)
        kind = data.get("type", "command")
        base = p.parent.resolve()
        if kind == "pipeline":
            pipe = validate_spec(PipelineJobSpec, data, source=str(p), index=index)
            return self.submit_pipeline(pipe, base_dir=base, **overrides)
        if kind != "command":
            raise SpecError(f"unknown job type {kind!r}", file=str(p), line=index.get(("type",)),
                            hint="Use command or pipeline.")
        data = {k: v for k, v in data.items() if k not in CommandJobSpec.ignored_fields}
        cmd = validate_spec(CommandJobSpec, data, source=str(p), index=index)
        return self._submit_command_spec(cmd, base, **overrides)

    def _submit_command_spec(self, cmd: Any, base: Path, **overrides: Any) -> Job:
        inputs = {k: _resolve_input_path(v.model_dump(exclude_none=True), base)
                  for k, v in cmd.inputs.items()}
        outputs = {k: v.model_dump(exclude_none=True) for k, v in cmd.outputs.items()}
        code = str((base / cmd.code).resolve()) if cmd.code and "://" not in cmd.code else None
        env = cmd.environment
        if isinstance(env, EnvironmentSpec):
            env = env.model_dump(exclude={"name"}, exclude_none=True)
        return self.submit_command(
            cmd.command, code=code, environment=env,
            compute=overrides.get("compute") or cmd.compute, inputs=inputs, outputs=outputs,
            display_name=cmd.display_name or cmd.name,
            experiment=overrides.get("experiment") or cmd.experiment_name,
            timeout=cmd.timeout, environment_variables=cmd.environment_variables,
        )

    # --- reading ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        return self._store.get_job(job_id)

    def list(self, *, status: str | list[str] | None = None, experiment: str | None = None,
             parent_id: str | None = None, include_children: bool = False,
             limit: int | None = 100, offset: int = 0) -> builtins.list[Job]:
        statuses = [status] if isinstance(status, str) else status
        return self._store.list_jobs(
            status=statuses, experiment=experiment, parent_id=parent_id,
            top_level=not include_children, limit=limit, offset=offset)

    def children(self, job_id: str) -> builtins.list[Job]:
        return self.list(parent_id=job_id, limit=None)

    def events(self, job_id: str) -> builtins.list[JobEvent]:
        return self._store.job_events(job_id)

    def metrics(self, job_id: str) -> builtins.list[Metric]:
        return self._store.job_metrics(job_id)

    def params(self, job_id: str) -> dict[str, Any]:
        return self._store.job_params(job_id)

    def io(self, job_id: str) -> builtins.list[JobIO]:
        return self._store.job_io(job_id)

    def produced(self, job_id: str) -> builtins.list[str]:
        """Assets registered from this job's outputs (``kind:name:version``)."""
        return [f"{a.kind}:{a.ref}" for a in self._store.find_by_job(job_id)]

    def logs(self, job_id: str, *, tail: int | None = None) -> str:
        """The preparation log then what the job printed."""
        paths = self.paths(self.get(job_id).id)
        text = read_log_text([paths.prepare_log, paths.job_log], paths.root)
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def read_log(self, job_id: str, offset: int = 0, *, max_bytes: int | None = None
                 ) -> dict[str, Any]:
        """The log from byte ``offset``: ``{text, offset, done}``; pass ``offset`` back to follow.

        ``done`` is true once the job has ended and everything has been read. A character is
        never cut in two between reads.
        """
        from jupyter_mlws.jobs.logs import LOG_CHUNK_BYTES, decode_complete, read_log_chunk

        job = self.get(job_id)  # the status first: once ended, what is read is complete
        paths = self.paths(job.id)
        data, end, total = read_log_chunk([paths.prepare_log, paths.job_log], max(0, offset),
                                          max_bytes or LOG_CHUNK_BYTES, root=paths.root)
        text, used = decode_complete(data, job.done and end >= total)
        new_offset = min(max(0, offset), total) + used
        return {"text": text, "offset": new_offset, "done": job.done and new_offset >= total}

    def read_log_tail(self, job_id: str, lines: int) -> dict[str, Any]:
        """The last ``lines`` lines, with the offset to follow from."""
        job = self.get(job_id)
        paths = self.paths(job.id)
        total = log_size([paths.prepare_log, paths.job_log], paths.root)
        return {"text": self.logs(job.id, tail=lines), "offset": total, "done": job.done}

    def count(self, *, status: str | builtins.list[str] | None = None,
              experiment: str | None = None, parent_id: str | None = None) -> int:
        """How many jobs :meth:`list` pages through with the same filters."""
        statuses = [status] if isinstance(status, str) else status
        return self._store.count_jobs(status=statuses, experiment=experiment,
                                      parent_id=parent_id, top_level=parent_id is None)

    def stream(self, job_id: str, *, poll_s: float = 0.2, from_start: bool = True
               ) -> Iterator[str]:
        """Yield log lines as they are written, until the job ends and its log is drained."""
        offset = 0 if from_start else self.read_log_tail(job_id, 1)["offset"]
        partial = ""
        while True:
            chunk = self.read_log(job_id, offset)
            offset = chunk["offset"]
            *lines, partial = (partial + chunk["text"]).split("\n")
            yield from lines
            if chunk["done"]:
                if partial:
                    yield partial
                return
            if not chunk["text"]:
                time.sleep(poll_s)

    def wait(self, job_id: str, *, timeout: float | None = None, poll_s: float = 0.05) -> Job:
        """Block until the job ends; returns it (raises TimeoutError after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.done:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            time.sleep(poll_s)

    def progress(self, job_id: str) -> dict[str, int] | None:
        """For a notebook job: cells executed so far out of all code cells."""
        paths = self.paths(job_id)
        for path in (paths.notebook_out, paths.notebook_in):
            if path.exists():
                try:
                    cells = json.loads(read_job_bytes(path, paths.root))["cells"]
                except (ValueError, KeyError, OSError, UnsafePathError):
                    return None
                code = [c for c in cells if c.get("cell_type") == "code"]
                done = sum(1 for c in code
                           if c.get("metadata", {}).get("papermill", {}).get("status")
                           == "completed")
                return {"executed": done if path == paths.notebook_out else 0,
                        "total": len(code)}
        return None

    # --- acting ------------------------------------------------------------------------------------

    def cancel(self, job_id: str) -> Job:
        """Stop a job (its process or container and their children); a no-op once it ended."""
        job = self.get(job_id)
        if job.done:
            return job
        paths = self.paths(job.id)
        paths.cancel_flag.touch()
        self._store.request_cancel(job.id)
        for child in self.children(job.id):
            if not child.done:
                self.cancel(child.id)
        if not is_locked(paths.runner_lock) and job.runner_pid is not None:
            _kill_leftovers(paths)
            self._store.transition_job(job.id, "Canceled", message="canceled (no runner)")
        return self.get(job.id)

    def rerun(self, job_id: str, **overrides: Any) -> Job:
        """Submit a job again with the same inputs (parameters may be overridden)."""
        job = self.get(job_id)
        spec = job.spec
        if job.type == "notebook":
            params = {**spec.get("parameters", {}), **overrides.pop("parameters", {})}
            snap = self.paths(job.id).notebook_in
            return self.submit_notebook(
                spec["notebook"] if Path(spec["notebook"]).exists() else snap, params,
                environment=overrides.get("environment", job.environment),
                compute=overrides.get("compute", job.compute), inputs=spec.get("inputs"),
                outputs={k: {"type": v} for k, v in (spec.get("outputs") or {}).items()},
                code=spec.get("code") if Path(spec.get("code") or "").exists() else None,
                experiment=job.experiment, timeout=spec.get("timeout"))
        if job.type == "command":
            return self.submit_command(
                spec["command"], code=spec.get("code"),
                environment=overrides.get("environment", job.environment),
                compute=overrides.get("compute", job.compute), inputs=spec.get("inputs"),
                outputs={k: {"type": v} for k, v in (spec.get("outputs") or {}).items()},
                display_name=job.display_name, experiment=job.experiment,
                timeout=spec.get("timeout"))
        return self.submit_pipeline({k: v for k, v in spec.items() if k != "base_dir"},
                                    base_dir=Path(spec.get("base_dir", ".")),
                                    compute=overrides.get("compute"))

    def download(self, job_id: str, dest: str | Path, *, what: str = "all") -> Path:
        """Copy a job's outputs, logs and output notebook into ``dest/<job id>``."""
        job = self.get(job_id)
        paths = self.paths(job.id)
        target = Path(dest) / job.id
        target.mkdir(parents=True, exist_ok=True)
        pieces = {"outputs": paths.outputs, "logs": paths.logs,
                  "notebook": paths.notebook_out.parent}
        for name, src in pieces.items():
            if what not in ("all", name) or not src.exists():
                continue
            copy_job_tree(src, target / name, paths.root)  # links are skipped, never followed
        return target

    def reap_orphans(self) -> builtins.list[str]:
        """Mark Failed the active jobs whose runner is gone (a crash, a reboot, a kill)."""
        reaped = []
        for job in self._store.iter_active_jobs():
            paths = self.paths(job.id)
            if is_locked(paths.runner_lock):
                continue
            age = time.time() - job.created_at.timestamp()
            if job.runner_pid is None and age < RUNNER_START_GRACE_S and not paths.runner_lock.exists():
                continue  # its runner is still starting
            if job.runner_pid is None and age < RUNNER_START_GRACE_S:
                continue
            _kill_leftovers(paths)
            reason = (f"the job's runner (pid {job.runner_pid}) stopped while the job was "
                      f"{job.status} (machine restart, or the process was killed)")
            runner_log = paths.logs / "runner.log"
            if runner_log.exists() and runner_log.stat().st_size:
                last = read_log_text([runner_log], paths.root).strip().splitlines()[-1:]
                reason += f"; its last words: {last[0]}" if last else ""
            if self._store.transition_job(job.id, "Failed", message=reason, error=reason):
                reaped.append(job.id)
        return reaped


def _kill_leftovers(paths: JobPaths) -> None:
    """Stop a job's process (checked to still be the job's) or container that outlived its
    runner."""
    from jupyter_mlws.compute.docker import stop_job_containers
    from jupyter_mlws.jobs.process_identity import kill_recorded_group

    kill_recorded_group(paths.child_pid)
    stop_job_containers(paths.root.name, paths.job_log)


def _slot_key(ws_path: Path, compute: str) -> str:
    import hashlib

    return hashlib.sha256(str(ws_path).encode()).hexdigest()[:12] + "-" + compute


def _read_notebook(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NotFoundError(f"The notebook {str(path)!r} does not exist.")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"not a notebook: it is not valid JSON ({exc})", file=str(path)) from None
    if not isinstance(nb, dict) or "cells" not in nb or "nbformat" not in nb:
        raise SpecError("not a notebook: no 'cells' or 'nbformat'", file=str(path),
                        hint="Save it from Jupyter as .ipynb.")
    try:
        import nbformat

        nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))
    except Exception as exc:
        raise SpecError(f"not a valid notebook: {str(exc).splitlines()[0]}",
                        file=str(path)) from None
    return nb


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters cell of a notebook, as papermill sees it (name -> details)."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def _check_parameters(path: Path, params: Mapping[str, Any]) -> None:
    if not params:
        return
    known = notebook_parameters(path)
    if not known:
        raise ValidationError(
            f"The notebook {path.name} has no cell tagged 'parameters', so it takes none.",
            hint="Tag the cell that sets the defaults with 'parameters' (Property Inspector in "
            "JupyterLab).",
        )
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValidationError(
            f"Unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"{path.name}.",
            hint=f"Its parameters cell defines: {', '.join(known)}.",
        )


def _input_type(value: Any) -> str:
    if isinstance(value, Mapping) and value.get("type"):
        return str(value["type"])
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str) and (looks_like_ref(value) or "/" in value or "://" in value):
        return "uri_folder"
    return "string"


def _primitive_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _optional(value: Any) -> bool:
    return bool(isinstance(value, Mapping) and value.get("optional"))


def _resolve_input_path(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    path = spec.get("path")
    if isinstance(path, str) and "://" not in path and not looks_like_ref(path):
        p = Path(path).expanduser()
        spec["path"] = str(p if p.is_absolute() else (base / p).resolve())
    return spec


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str)) if value is not None else None


__all__ = ["ACTIVE_VALUES", "TERMINAL_VALUES", "JobOperations", "new_job_id"]
