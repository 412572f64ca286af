"""Submitting jobs: checks, code snapshot, input binding, the launch contract, the runner.

Submission checks everything it can (the notebook, its parameters, names of the environment,
compute and inputs), snapshots the code, binds inputs, writes ``launch.json`` for the runner,
records the job as Queued, starts the detached runner and returns at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from jupyter_mlws.assets.component import resolve_command
from jupyter_mlws.assets.environment import Environment, EnvironmentSpec
from jupyter_mlws.errors import AssetNotFoundError, MlwsError, SpecError, ValidationError
from jupyter_mlws.jobs import hosts
from jupyter_mlws.jobs.azure_compat import lay_out_conventions, with_includes
from jupyter_mlws.jobs.inputs import (
    InputBinder,
    bind_outputs,
    input_type,
    is_optional,
    resolve_input_path,
)
from jupyter_mlws.jobs.launch import JobKind, Launch
from jupyter_mlws.jobs.model import Job, JobStatus
from jupyter_mlws.jobs.notebooks import check_parameters, notebook_parameters, read_notebook
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.queries import JobQueries
from jupyter_mlws.jobs.safe_files import open_log_for_append

#: Set by the job agent for a submission it takes from ``mlws`` (:mod:`jupyter_mlws.agent.intake`):
#: told the job's id before the job is recorded, and hands the runner's start to the submitter.
SUBMIT_HOOK: ContextVar[Any] = ContextVar("mlws_submit_hook", default=None)
SNAPSHOT_MAX_FILES = 20_000
SNAPSHOT_STAT_CACHE = "snapshot-stat-cache.json"
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
    """The folder of the ``jupyter_mlws`` package (put on the job's PYTHONPATH)."""
    return Path(__file__).resolve().parent.parent


class JobSubmission(JobQueries):
    """``submit_notebook``, ``submit_command``, ``submit_pipeline``, ``create_from_file``."""

    # --- resolving names -----------------------------------------------------------------------

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

    # --- laying out the job ----------------------------------------------------------------------

    def _snapshot(self, folder: Path, paths: JobPaths) -> dict[str, Any]:
        """Store the code folder (honouring .gitignore/.mlwsignore) and lay it out for the run."""
        from jupyter_mlws.artifacts import iter_folder
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
        from jupyter_mlws.artifacts.stat_cache import StatCache

        # stored and laid out under one pinned session: gc cannot take the blobs in between;
        # files whose stat is unchanged since the last snapshot are not read again
        cache = StatCache(self._ws.path / SNAPSHOT_STAT_CACHE)
        return self._ws.artifacts.snapshot(folder, paths.code, ignore=ignore,
                                           stat_cache=cache).to_dict()

    def _binder(self) -> InputBinder:
        return InputBinder(self._ws, self.output_path)

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
        """A folder holding only this package, for job processes on this machine: one per
        installation (named by its path), so that the jobs of two installations sharing the
        cache folder (a checkout beside an installed version) each run their own."""
        here = package_dir()
        lib = self._ws.cache_dir / "lib" / hashlib.sha256(str(here).encode()).hexdigest()[:16]
        link = lib / "jupyter_mlws"
        if not link.exists():
            lib.mkdir(parents=True, exist_ok=True)
            tmp = lib / f".link-{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(here, target_is_directory=True)
            os.replace(tmp, link)
        return str(lib)

    def _launch(self, *, job_id: str, kind: JobKind, compute: Any, env: Environment | None,
                argv: list[str], cwd: Path, env_vars: dict[str, str], mounts: list[str],
                outputs: Mapping[str, str], timeout: float | None) -> Launch:
        from jupyter_mlws.compute import target_for
        from jupyter_mlws.operations.target_services import WorkspaceTargetServices

        launch = Launch(
            job_id=job_id, workspace=str(self._ws.path), kind=kind,
            compute=compute.name, compute_kind=compute.type,
            max_concurrent=int(compute.spec.get("max_concurrent_jobs", 1)),
            slot_dir=str(self._ws.cache_dir / "slots" / _slot_key(self._ws.path, compute.name)),
            environment=env.ref if env else None, env_hash=env.env_hash if env else None,
            argv=argv, cwd=str(cwd), env=env_vars, mounts=mounts, outputs=dict(outputs),
            timeout=timeout, package_dir=str(package_dir()), pythonpath=self._pythonpath(),
        )
        if kind != "pipeline":
            target = target_for(WorkspaceTargetServices(self._ws), compute)
            runtime = target.plan(launch)
            if runtime is not None:
                launch = launch.model_copy(update={"ready": True, "python": runtime.python,
                                                   "image": runtime.image})
        return launch

    def _create_and_start(self, *, job: dict[str, Any], launch: Launch, paths: JobPaths,
                          params: Mapping[str, Any], lineage: list[dict[str, Any]]) -> Job:
        launch.write(paths.launch)
        hook = SUBMIT_HOOK.get()
        if hook is not None:
            hook.before_record(launch.job_id)
        job["spec"] = {**job.get("spec", {}), hosts.KEY: hosts.this_host(self._ws.path)}
        created = self._store.create_job(job, params=params,
                                         io=[{"direction": "input", **row} for row in lineage])
        try:
            (hook.start_runner if hook is not None else self._start_runner)(paths, launch)
        except OSError as exc:
            self._store.transition_job(created.id, JobStatus.FAILED,
                                       message=f"the runner could not start: {exc}",
                                       error=f"the runner could not start: {exc}")
            raise MlwsError(f"The job's runner could not start: {exc}") from None
        return created

    @staticmethod
    def _start_runner(paths: JobPaths, launch: Launch) -> None:
        """Start the detached runner; a job that waits for a slot gets its place in the
        compute's queue now (a locked ticket handed to the runner), so jobs start in the order
        they were submitted whatever order their runners start in."""
        from jupyter_mlws.agent.fast import spawn_runner
        from jupyter_mlws.jobs import queue

        if launch.kind == "pipeline":
            spawn_runner(paths.root, paths.logs / "runner.log", package_dir().parent)
            return
        path, ticket = queue.issue_ticket(Path(launch.slot_dir), launch.job_id)
        try:
            spawn_runner(paths.root, paths.logs / "runner.log", package_dir().parent,
                         ticket=(str(path), ticket.fileno()))
        finally:
            ticket.close()  # the runner holds the lock now (or the ticket is left stale)

    def _record(self, *, job_id: str, kind: str, compute: Any, env: Environment | None,
                spec: dict[str, Any], display_name: str | None, experiment: str | None,
                parent: tuple[str, str] | None = None) -> dict[str, Any]:
        return {
            "id": job_id, "type": kind, "display_name": display_name,
            "experiment": experiment or "default", "status": JobStatus.QUEUED.value,
            "parent_id": parent[0] if parent else None,
            "step_name": parent[1] if parent else None, "compute": compute.name,
            "environment": env.ref if env else None, "env_hash": env.env_hash if env else None,
            "spec": spec, "created_by": creator(self._store, parent),
        }

    # --- the job kinds -------------------------------------------------------------------------

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
        _notes: list[str] | None = None,
    ) -> Job:
        """Run a notebook with papermill; returns at once with the Queued job.

        ``parameters`` are injected after the cell tagged ``parameters`` (types kept) and must
        be names that cell defines. The notebook's folder (or ``code``) is snapshotted and is the
        working directory of the run.
        """
        nb_path = Path(notebook).expanduser().resolve()
        nb = read_notebook(nb_path, self._ws.cache_dir)
        params = dict(parameters or {})
        check_parameters(nb_path, params)
        comp = self._compute(compute)
        env = self._environment(environment)
        _notes = [*(_notes or []), *self._ws.registries.notes_for(env)]  # registry lineage
        job_id = new_job_id()
        paths = self.paths(job_id)
        paths.make()
        try:
            folder = Path(code).expanduser().resolve() if code else nb_path.parent
            snapshot = self._snapshot(folder, paths)
            shutil.copyfile(nb_path, paths.notebook_in)
            bound = self._binder().bind(inputs, paths)
            outs = bind_outputs(outputs, paths, self._ws)
            try:
                cwd = (paths.code / nb_path.relative_to(folder)).parent
            except ValueError:
                cwd = paths.code
            lay_out_conventions(paths, cwd)
            _write_notes(paths, _notes)
            argv = ["{python}", "-m", "jupyter_mlws.jobs.nbrun", str(paths.notebook_in),
                    str(paths.notebook_out), str(paths.params_file), str(paths.result)]
            env_vars = self._base_env(job_id, paths, bound.values, outs, env,
                                      environment_variables)
            if bound.values:  # an input whose name the parameters cell defines is injected too
                declared = notebook_parameters(nb_path)
                for key, value in bound.values.items():
                    if key in declared and key not in params:
                        params[key] = value
            paths.params_file.write_text(json.dumps(params, default=str))
            launch = self._launch(job_id=job_id, kind="notebook", compute=comp, env=env,
                                  argv=argv, cwd=cwd, env_vars=env_vars, mounts=bound.mounts,
                                  outputs=outs, timeout=timeout)
            spec = {"notebook": str(nb_path), "parameters": params, "code": str(folder),
                    "snapshot": snapshot, "inputs": _jsonable(inputs), "outputs": outs,
                    "timeout": timeout, "kernel": (nb.get("metadata", {}).get("kernelspec")
                                                   or {}).get("name"), "notes": _notes or []}
            job = self._record(job_id=job_id, kind="notebook", compute=comp, env=env, spec=spec,
                               display_name=display_name or nb_path.stem, experiment=experiment,
                               parent=_parent)
        except BaseException:
            shutil.rmtree(paths.root, ignore_errors=True)
            raise
        return self._create_and_start(job=job, launch=launch, paths=paths, params=params,
                                      lineage=bound.lineage)

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
        additional_includes: list[str] | None = None,
        _parent: tuple[str, str] | None = None,
        _notes: list[str] | None = None,
    ) -> Job:
        """Run a shell command; ``${{inputs.x}}``, ``${{outputs.y}}`` and ``$[[...]]`` are
        resolved as the Azure ML CLI v2 does (every value becomes one shell word).

        ``additional_includes`` (folders or files) are copied into the root of the code
        snapshot. The working directory has ``./outputs`` and ``./logs``, kept with the job.
        """
        comp = self._compute(compute)
        env = self._environment(environment)
        _notes = [*(_notes or []), *self._ws.registries.notes_for(env)]  # registry lineage
        _check_command_template(command, inputs, outputs)
        job_id = new_job_id()
        paths = self.paths(job_id)
        paths.make()
        try:
            snapshot = None
            folder = Path(code).expanduser().resolve() if code else None
            with with_includes(folder, list(additional_includes or [])) as merged:
                if merged is not None:
                    snapshot = self._snapshot(merged, paths)
            paths.code.mkdir(parents=True, exist_ok=True)
            lay_out_conventions(paths, paths.code)
            _write_notes(paths, _notes)
            bound = self._binder().bind(inputs, paths)
            outs = bind_outputs(outputs, paths, self._ws)
            resolved = resolve_command(command, bound.values,
                                       {k: str(paths.outputs / k) for k in outs})
            env_vars = self._base_env(job_id, paths, bound.values, outs, env,
                                      environment_variables)
            launch = self._launch(job_id=job_id, kind="command", compute=comp, env=env,
                                  argv=["/bin/sh", "-c", resolved], cwd=paths.code,
                                  env_vars=env_vars, mounts=bound.mounts, outputs=outs,
                                  timeout=timeout)
            spec = {"command": command, "resolved_command": resolved,
                    "code": str(code) if code else None, "snapshot": snapshot,
                    "inputs": _jsonable(inputs), "outputs": outs, "timeout": timeout,
                    "notes": _notes or []}
            job = self._record(job_id=job_id, kind="command", compute=comp, env=env, spec=spec,
                               display_name=display_name, experiment=experiment,
                               parent=_parent)
        except BaseException:
            shutil.rmtree(paths.root, ignore_errors=True)
            raise
        params = {row["name"]: json.loads(row["value"]) for row in bound.lineage
                  if "value" in row}
        return self._create_and_start(job=job, launch=launch, paths=paths, params=params,
                                      lineage=bound.lineage)

    def submit_pipeline(self, spec: Any, *, base_dir: Path | None = None,
                        compute: str | None = None, experiment: str | None = None,
                        _parent: tuple[str, str] | None = None) -> Job:
        """Run a pipeline: its steps become child jobs, run in dependency order.

        ``compute`` runs every step there; otherwise each step runs on its own ``compute``, or
        the pipeline's (``settings.default_compute`` or ``compute``). Cloud compute names map to
        local computes (:func:`~jupyter_mlws.jobs.azure_compat.map_compute`).
        """
        from jupyter_mlws.assets.job import PipelineJobSpec
        from jupyter_mlws.jobs.pipeline import step_order

        pipe = spec if isinstance(spec, PipelineJobSpec) else PipelineJobSpec.model_validate(spec)
        step_order(pipe)  # refuses cycles and unknown steps before anything runs
        computes, notes = self._step_computes(pipe, compute)
        default = computes.pop("(pipeline)")
        used = set(computes.values())
        comp = self._compute(used.pop() if len(used) == 1 else default)  # what the steps use
        job_id = new_job_id()
        paths = self.paths(job_id)
        paths.make()
        pipe_notes = list(pipe.settings.get("file_notes") or [])
        default_note = notes.pop("(pipeline)", None)
        if default_note and default_note not in pipe_notes:  # (a rerun has it already)
            pipe_notes.append(default_note)
        _write_notes(paths, pipe_notes)
        data = pipe.model_dump(mode="json", exclude_none=True)
        data["base_dir"] = str(base_dir or Path.cwd())
        data.setdefault("settings", {}).update(
            {"resolved_computes": computes, "compute_notes": notes, "file_notes": pipe_notes})
        launch = self._launch(job_id=job_id, kind="pipeline", compute=comp, env=None, argv=[],
                              cwd=paths.root, env_vars={}, mounts=[], outputs={}, timeout=None)
        job = self._record(job_id=job_id, kind="pipeline", compute=comp, env=None, spec=data,
                           display_name=pipe.display_name, experiment=experiment
                           or pipe.experiment_name, parent=_parent)
        return self._create_and_start(job=job, launch=launch, paths=paths, params={},
                                      lineage=[])

    def _step_computes(self, pipe: Any, override: str | None
                       ) -> tuple[dict[str, str], dict[str, str]]:
        """Step name -> local compute (``(pipeline)``: the pipeline's own), and the notes."""
        from jupyter_mlws.jobs.azure_compat import map_compute

        if override:
            name = self._compute(override).name  # a name typed on the command line must exist
            return {"(pipeline)": name, **{s: name for s in pipe.jobs}}, {}
        default, note = map_compute(self._ws, pipe.settings.get("default_compute")
                                    or pipe.compute)
        computes = {"(pipeline)": default}
        notes = {"(pipeline)": note} if note else {}
        for step_name, step in pipe.jobs.items():
            mapped, step_note = map_compute(self._ws, step.compute) if step.compute else (
                default, note)
            computes[step_name] = mapped
            if step_note:
                notes[step_name] = step_note
        return computes, notes

    def create_from_file(self, path: str | Path, **overrides: Any) -> Job:
        """Submit a job from Azure ML CLI v2 YAML (commandJob or pipelineJob).

        Fields that mean nothing locally are dropped with a warning in the job's log; cloud
        compute names map to local computes; cloud-only job types are refused by name.
        """
        from jupyter_mlws.assets.job import CommandJobSpec, PipelineJobSpec
        from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec
        from jupyter_mlws.jobs.azure_compat import (
            drop_local_noops,
            refuse_cloud_inputs,
            refuse_cloud_only,
        )

        p = Path(path)
        data, index = load_yaml(p)
        if not isinstance(data, dict):
            raise SpecError("expected a mapping of fields", file=str(p), line=1)
        refuse_cloud_only(data, where=str(p))
        refuse_cloud_inputs(data)
        kind = data.get("type", "command")
        if kind == "sweep":
            from jupyter_mlws.sweeps.submit import submit_sweep_file

            return submit_sweep_file(self._ws, data, p, index, **overrides)
        base = p.parent.resolve()
        data, notes = drop_local_noops(dict(data), where=str(p))
        if kind == "pipeline":
            jobs = data.get("jobs")
            steps: dict[str, Any] = jobs if isinstance(jobs, dict) else {}
            for step_name, step in steps.items():
                if isinstance(step, dict):
                    refuse_cloud_only(step, where=f"{p}: step {step_name!r}")
                    steps[step_name], more = drop_local_noops(
                        dict(step), where=f"{p}: step {step_name!r}")
                    notes += more
            pipe = validate_spec(PipelineJobSpec, data, source=str(p), index=index)
            pipe.settings["file_notes"] = notes
            return self.submit_pipeline(pipe, base_dir=base, **overrides)
        if kind != "command":
            raise SpecError(f"unknown job type {kind!r}", file=str(p), line=index.get(("type",)),
                            hint="Use command, pipeline or sweep.")
        env = data.get("environment")
        if isinstance(env, dict):
            data["environment"] = EnvironmentSpec.prepare_yaml(env, base, str(p))
        cmd = validate_spec(CommandJobSpec, data, source=str(p), index=index)
        return self._submit_command_spec(cmd, base, notes, **overrides)

    def _submit_command_spec(self, cmd: Any, base: Path, notes: list[str],
                             **overrides: Any) -> Job:
        from jupyter_mlws.jobs.azure_compat import map_compute

        inputs = {k: resolve_input_path(v.model_dump(exclude_none=True), base)
                  for k, v in cmd.inputs.items()}
        outputs = {k: v.model_dump(exclude_none=True) for k, v in cmd.outputs.items()}
        code = str((base / cmd.code).resolve()) if cmd.code and "://" not in cmd.code else None
        env = cmd.environment
        if isinstance(env, EnvironmentSpec):
            env = env.model_dump(exclude={"name"}, exclude_none=True)
        compute = overrides.get("compute")
        if not compute:
            compute, note = map_compute(self._ws, cmd.compute)
            notes = notes + ([note] if note else [])
        return self.submit_command(
            cmd.command, code=code, environment=env, compute=compute, inputs=inputs,
            outputs=outputs, display_name=cmd.display_name or cmd.name,
            experiment=overrides.get("experiment") or cmd.experiment_name,
            timeout=cmd.job_timeout, environment_variables=cmd.environment_variables,
            additional_includes=[str((base / i).resolve()) for i in cmd.additional_includes],
            _notes=notes,
        )


def _check_command_template(command: str, inputs: Mapping[str, Any] | None,
                            outputs: Mapping[str, Any] | None) -> None:
    """Refuse a command that names undeclared inputs/outputs (before anything is laid out)."""
    from jupyter_mlws.assets.component import InputSpec, OutputSpec, check_command

    declared_in = {k: InputSpec(type=input_type(v), optional=is_optional(v))
                   for k, v in (inputs or {}).items()}
    declared_out = {k: OutputSpec(type=(v or {}).get("type", "uri_folder")
                                  if isinstance(v, Mapping) else "uri_folder")
                    for k, v in (outputs or {}).items()}
    try:
        check_command(command, declared_in, declared_out)
    except ValueError as exc:
        raise SpecError(str(exc), field="command") from None


def _write_notes(paths: JobPaths, notes: list[str] | None) -> None:
    """Notes about how the spec was read, at the top of the job's log."""
    if notes:  # a link planted at the log is refused: the notes are skipped
        with contextlib.suppress(OSError), open_log_for_append(paths.job_log) as f:
            f.write("".join(f"[mlws] {n}\n" for n in notes).encode("utf-8"))


def _slot_key(ws_path: Path, compute: str) -> str:
    return hashlib.sha256(str(ws_path).encode()).hexdigest()[:12] + "-" + compute


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def creator(store: Any, parent: tuple[str, str] | None) -> str | None:
    """Who a new job is recorded as created by: a step or trial is its parent's (the pipeline
    or sweep driver runs it on the submitter's behalf), anything else whoever acts now."""
    from jupyter_mlws.errors import NotFoundError
    from jupyter_mlws.operations.base import _user

    if parent is not None:
        try:
            return store.get_job(parent[0]).created_by
        except NotFoundError:
            pass
    return _user()
