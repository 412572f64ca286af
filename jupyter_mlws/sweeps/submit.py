"""Submitting a sweep: check everything a trial would refuse, snapshot the code once, record
the parent job and start its runner (``python -m jupyter_mlws.sweeps.runner JOB_DIR``).

Trials are child jobs submitted by that runner through the ordinary ``ws.jobs.submit_notebook``
and ``ws.jobs.submit_command``; their values are drawn by :mod:`jupyter_mlws.sweeps.sampler`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.errors import MlwsError, SpecError
from jupyter_mlws.jobs.model import Job, JobStatus
from jupyter_mlws.sweeps.sampler import check_grid
from jupyter_mlws.sweeps.space import Expression, parse_space
from jupyter_mlws.sweeps.spec import NOOP_TRIAL_FIELDS, SweepJobSpec, SweepTrial

if TYPE_CHECKING:
    from jupyter_mlws.workspace import Workspace

SEARCH_REF = re.compile(r"\$\{\{\s*search_space\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def submit_sweep_file(ws: Workspace, data: dict[str, Any], path: Path, index: Any,
                      **overrides: Any) -> Job:
    """A ``type: sweep`` YAML file (Azure ``sweepJob``), as read by ``create_from_file``."""
    from jupyter_mlws.assets.yaml_io import validate_spec
    from jupyter_mlws.jobs.azure_compat import drop_local_noops

    data, notes = drop_local_noops(dict(data), where=str(path))
    trial = data.get("trial")
    if isinstance(trial, dict):
        kept = {k: v for k, v in trial.items() if k not in NOOP_TRIAL_FIELDS}
        notes += [f"warning: {path}: 'trial.{k}' means nothing on a local compute and is "
                  "ignored" for k in trial if k in NOOP_TRIAL_FIELDS]
        data["trial"] = kept
    spec = validate_spec(SweepJobSpec, data, source=str(path), index=index)
    try:
        return submit_sweep(ws, spec, base_dir=path.parent.resolve(), notes=notes, **overrides)
    except SpecError as exc:
        if exc.file:
            raise
        line = index.get(tuple(exc.field.split("."))) if exc.field and index else None
        raw = exc.message.split(": ", 1)[1] if exc.field else exc.message
        raise SpecError(raw, file=str(path), line=line, field=exc.field, hint=exc.hint) from None


def submit_sweep(ws: Workspace, spec: SweepJobSpec | Mapping[str, Any], *,
                 base_dir: Path | None = None, compute: str | None = None,
                 experiment: str | None = None, notes: list[str] | None = None,
                 resume_from: str | None = None, _parent: tuple[str, str] | None = None) -> Job:
    """Check a sweep and start it; returns the Queued parent job at once."""
    from jupyter_mlws.assets.yaml_io import validate_spec
    from jupyter_mlws.jobs.azure_compat import map_compute
    from jupyter_mlws.jobs.submit import new_job_id

    sweep = spec if isinstance(spec, SweepJobSpec) else validate_spec(SweepJobSpec, dict(spec))
    base = (base_dir or Path.cwd()).resolve()
    space = parse_space(sweep.search_space)
    if sweep.sampling_algorithm.type == "grid":
        check_grid(space)
    notes = list(notes or [])
    if compute:
        target = ws.computes.get(compute).name
    else:
        target, note = map_compute(ws, sweep.compute)
        notes += [note] if note else []
    job_id = new_job_id()
    paths = ws.jobs.paths(job_id)
    paths.make()
    try:
        trial = _trial_template(ws, sweep, space, base, paths.code)
        data = sweep.model_dump(mode="json", exclude_none=True)
        data.update({"base_dir": str(base), "trial_job": trial, "notes": notes,
                     "resume_from": resume_from})
        job = _record(ws, job_id, target, data, sweep.display_name or sweep.name,
                      experiment or sweep.experiment_name, _parent)
        _launch(ws, job_id, target, paths)
    except BaseException:
        shutil.rmtree(paths.root, ignore_errors=True)
        raise
    if notes:  # at the top of the sweep's log (a link planted there: skipped)
        import contextlib

        from jupyter_mlws.jobs.safe_files import open_log_for_append

        with contextlib.suppress(OSError), open_log_for_append(paths.job_log) as f:
            f.write("".join(f"[mlws] {n}\n" for n in notes).encode("utf-8"))
    return _create_and_start(ws, job, paths)


def _trial_template(ws: Workspace, sweep: SweepJobSpec, space: list[Expression], base: Path,
                    code_dir: Path) -> dict[str, Any]:
    """What each trial is submitted with (the runner adds the drawn values)."""
    from jupyter_mlws.jobs.inputs import resolve_input_path

    inputs = {k: resolve_input_path(v.model_dump(exclude_none=True), base)
              for k, v in sweep.inputs.items()}
    outputs = {k: v.model_dump(exclude_none=True) for k, v in sweep.outputs.items()}
    names = [e.name for e in space]
    if isinstance(sweep.trial, str):
        return _component_trial(ws, sweep.trial, names, base, inputs, outputs)
    trial: SweepTrial = sweep.trial
    env = _environment(ws, trial.environment, base)
    common = {"inputs": inputs, "outputs": outputs, "environment": env,
              "environment_variables": trial.environment_variables,
              "timeout": sweep.limits.trial_timeout}
    if trial.notebook:
        nb = (base / trial.notebook).resolve()
        folder = (base / trial.code).resolve() if trial.code else nb.parent
        _check_notebook(nb, space, trial.parameters)
        _snapshot(ws, folder, code_dir)
        try:
            rel = nb.relative_to(folder)
        except ValueError:
            raise SpecError(f"the notebook {trial.notebook!r} is not inside the code folder "
                            f"{trial.code!r}", field="trial.notebook") from None
        return {"kind": "notebook", "notebook": str(code_dir / rel), "code": str(code_dir),
                "parameters": trial.parameters, **common}
    command = str(trial.command)
    used = set(SEARCH_REF.findall(command))
    unknown = sorted(used - set(names))
    if unknown:
        raise SpecError(f"the command uses ${{{{search_space.{unknown[0]}}}}}, which the "
                        "search space does not define", field="trial.command",
                        hint=f"The search space defines: {', '.join(names)}.")
    clash = sorted(used & set(inputs))
    if clash:
        raise SpecError(f"{clash[0]!r} is both an input and a search space parameter",
                        field="search_space", hint="Rename one of them.")
    command = SEARCH_REF.sub(lambda m: "${{inputs." + m.group(1) + "}}", command)
    _check_command(command, {**inputs, **{n: {} for n in used}}, list(outputs))
    code = None
    if trial.code:
        _snapshot(ws, (base / trial.code).resolve(), code_dir)
        code = str(code_dir)
    return {"kind": "command", "command": command, "code": code, "swept_inputs": sorted(used),
            **common}


def _check_command(command: str, inputs: Mapping[str, Any], outputs: list[str]) -> None:
    """Refuse a trial command naming inputs or outputs the sweep does not declare (or an
    optional input outside ``$[[ ]]``)."""
    from jupyter_mlws.assets.component import InputSpec, OutputSpec, check_command

    declared = {k: InputSpec(type="string", optional=bool(isinstance(v, Mapping)
                                                          and v.get("optional")))
                for k, v in inputs.items()}
    try:
        check_command(command, declared,
                      {k: OutputSpec(type="uri_folder") for k in outputs})
    except ValueError as exc:
        raise SpecError(str(exc), field="trial.command") from None


def _component_trial(ws: Workspace, ref: str, names: list[str], base: Path,
                     inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    from jupyter_mlws.jobs.pipeline import _component

    comp = _component(ws, ref, base)
    if comp.get("type") not in (None, "command"):
        raise SpecError(f"a sweep trial must be a command component, not {comp.get('type')!r}",
                        field="trial")
    declared = comp.get("inputs") or {}
    missing = [n for n in names if n not in declared]
    if missing:
        raise SpecError(f"the component {ref!r} has no input {missing[0]!r} for the search "
                        "space parameter of that name", field=f"search_space.{missing[0]}",
                        hint=f"Its inputs: {', '.join(declared) or 'none'}.")
    return {"kind": "component", "component": comp, "command": comp["command"],
            "environment": comp.get("environment"), "code": comp.get("code"),
            "inputs": inputs, "outputs": outputs, "swept_inputs": names,
            "environment_variables": {}, "timeout": None}


def _environment(ws: Workspace, env: Any, base: Path) -> str | None:
    """An environment given by name or inline, as a reference every trial uses."""
    if env is None:
        return None
    if isinstance(env, dict):
        from jupyter_mlws.assets.environment import EnvironmentSpec

        data = EnvironmentSpec.prepare_yaml(env, base, "trial.environment")
        return str(ws.environments.register_anonymous(data).ref)
    return str(ws.environments.get(str(env)).ref)


def _check_notebook(nb: Path, space: list[Expression], fixed: Mapping[str, Any]) -> None:
    """Every swept name must be in the parameters cell, with values of its type."""
    from jupyter_mlws.jobs.notebooks import check_parameters, read_notebook
    from jupyter_mlws.sweeps.space import sample_values

    read_notebook(nb)
    check_parameters(nb, {**fixed, **sample_values(space)})
    for e in space:
        for value in (e.fields["values"] if e.type == "choice" else []):
            check_parameters(nb, {e.name: value})


def _snapshot(ws: Workspace, folder: Path, dest: Path) -> None:
    """The code folder, stored and laid out once for every trial (honouring .mlwsignore)."""
    from jupyter_mlws.operations.components import code_ignore_spec

    if not folder.is_dir():
        raise SpecError(f"the code folder {str(folder)!r} does not exist", field="trial.code")
    ws.artifacts.snapshot(folder, dest, ignore=code_ignore_spec(folder))


def _record(ws: Workspace, job_id: str, compute: str, spec: dict[str, Any],
            display_name: str | None, experiment: str | None,
            parent: tuple[str, str] | None) -> dict[str, Any]:
    from jupyter_mlws.jobs.submit import creator

    return {"id": job_id, "type": "sweep", "display_name": display_name or "sweep",
            "experiment": experiment or "default", "status": JobStatus.QUEUED.value,
            "parent_id": parent[0] if parent else None,
            "step_name": parent[1] if parent else None, "compute": compute,
            "environment": None, "env_hash": None, "spec": spec,
            "created_by": creator(ws.store, parent)}


def _launch(ws: Workspace, job_id: str, compute: str, paths: Any) -> None:
    """The launch file (no timeout: ``limits.timeout`` cancels the sweep, see run.py)."""
    from jupyter_mlws.jobs.launch import Launch
    from jupyter_mlws.jobs.submit import package_dir

    Launch(job_id=job_id, workspace=str(ws.path), kind="sweep", compute=compute,
           compute_kind=ws.computes.get(compute).type, slot_dir=str(paths.root / "no-slot"),
           argv=[], cwd=str(paths.root),
           package_dir=str(package_dir())).write(paths.launch)


def _create_and_start(ws: Workspace, job: dict[str, Any], paths: Any) -> Job:
    from jupyter_mlws.jobs.submit import package_dir

    created = ws.store.create_job(job, params={}, io=[])
    try:
        with open(paths.logs / "runner.log", "ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "jupyter_mlws.sweeps.runner", str(paths.root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                    p for p in (str(package_dir().parent), os.environ.get("PYTHONPATH")) if p)})
    except OSError as exc:
        ws.store.transition_job(created.id, JobStatus.FAILED, error=str(exc),
                                message=f"the sweep runner could not start: {exc}")
        raise MlwsError(f"The sweep's runner could not start: {exc}") from None
    return created


def rerun_sweep(ws: Workspace, job: Job, *, resume: bool = False,
                compute: str | None = None) -> Job:
    """Submit a sweep again; ``resume`` keeps the trials that ended and runs only the rest."""
    spec = dict(job.spec)
    base = Path(spec.get("base_dir") or ".")
    fields = set(SweepJobSpec.model_fields) | {"$schema"}
    data = {k: v for k, v in spec.items() if k in fields}
    if isinstance(data.get("trial"), dict):
        trial = dict(data["trial"])
        for key in ("notebook", "code"):  # the sweep's snapshot, if the originals moved
            if trial.get(key) and not (base / trial[key]).exists():
                trial.pop("code", None)
                trial["notebook"] = spec["trial_job"].get("notebook")
        data["trial"] = trial
    return submit_sweep(ws, data, base_dir=base, compute=compute or job.compute,
                        experiment=job.experiment, resume_from=job.id if resume else None)


SWEEP_STEP_FIELDS = ("trial", "search_space", "sampling_algorithm", "objective", "limits",
                     "early_termination", "display_name")


def submit_sweep_step(ws: Workspace, step: Mapping[str, Any], inputs: dict[str, Any],
                      outputs: dict[str, Any], base: Path, compute: str | None,
                      common: Mapping[str, Any]) -> str:
    """A pipeline's ``type: sweep`` step: a sweep whose outputs are its best trial's."""
    spec = {k: step[k] for k in SWEEP_STEP_FIELDS if step.get(k) is not None}
    spec.update(inputs=inputs, outputs=outputs)
    from jupyter_mlws.assets.yaml_io import validate_spec

    name = common["_parent"][1]
    try:
        sweep = validate_spec(SweepJobSpec, spec)
    except SpecError as exc:
        raise SpecError(f"step {name!r}: {exc.message}", field=f"jobs.{name}") from None
    job = submit_sweep(ws, sweep, base_dir=base, compute=compute,
                       experiment=common.get("experiment"), _parent=common["_parent"])
    return job.id
