"""Pipelines: steps wired by ``${{parent.jobs.A.outputs.o}}`` run as child jobs, in dependency
order, independent ones side by side (each child's runner takes a slot of its compute, so the
compute's limit holds). A failed step fails the steps that depend on it; the others go on.

A pipeline runs on the same job template as every job (:class:`PipelineRun`): the template owns
its states, cancel and outcome; this module only starts the steps and follows them.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from jupyter_mlws.assets.job import iso_duration_seconds
from jupyter_mlws.compute.base import JobTemplate, RunContext, Runtime
from jupyter_mlws.errors import MlwsError, SpecError
from jupyter_mlws.fileio import write_json_atomic
from jupyter_mlws.jobs.model import JobStatus
from jupyter_mlws.jobs.safe_files import open_log_for_append

if TYPE_CHECKING:
    from jupyter_mlws.assets.job import PipelineJobSpec
    from jupyter_mlws.workspace import Workspace

_STEP_REF = re.compile(r"\$\{\{\s*parent\.jobs\.([A-Za-z0-9_\-]+)\.outputs\.([A-Za-z0-9_]+)\s*\}\}")
_PARENT_OUT = re.compile(r"\$\{\{\s*parent\.outputs\.([A-Za-z0-9_]+)\s*\}\}")
_PARENT_IN = re.compile(r"\$\{\{\s*parent\.inputs\.([A-Za-z0-9_]+)\s*\}\}")
POLL_S = 0.2


def _refs(value: Any) -> list[tuple[str, str]]:
    text = value if isinstance(value, str) else (
        value.get("path") if isinstance(value, Mapping) else None)
    return _STEP_REF.findall(text) if isinstance(text, str) else []


def rewrite_parent_outputs(steps: Mapping[str, Any]) -> dict[str, Any]:
    """Steps (as mappings) whose inputs name ``${{parent.outputs.X}}`` read the step output
    bound to ``X`` instead (``${{parent.jobs.S.outputs.o}}``), as Azure ML resolves them."""
    producers: dict[str, str] = {}
    for name, step in steps.items():
        for out, value in (step.get("outputs") or {}).items():
            text = value.get("path") if isinstance(value, Mapping) else value
            m = _PARENT_OUT.fullmatch(text.strip()) if isinstance(text, str) else None
            if m:
                producers[m.group(1)] = "${{parent.jobs." + name + ".outputs." + out + "}}"

    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return _PARENT_OUT.sub(lambda m: producers.get(m.group(1), m.group(0)), value)
        if isinstance(value, Mapping):
            return {k: sub(v) for k, v in value.items()}
        return value

    return {name: {**step, "inputs": {k: sub(v) for k, v in (step.get("inputs") or {}).items()}}
            for name, step in steps.items()}


def dependencies(steps: Mapping[str, Any]) -> dict[str, set[str]]:
    steps = rewrite_parent_outputs(steps)
    deps: dict[str, set[str]] = {}
    for name, step in steps.items():
        inputs = step["inputs"]
        found = {a for value in inputs.values() for a, _ in _refs(value)}
        unknown = found - set(steps)
        if unknown:
            raise SpecError(f"step {name!r} uses the outputs of unknown steps: "
                            f"{', '.join(sorted(unknown))}", field=f"jobs.{name}.inputs",
                            hint=f"Steps: {', '.join(steps)}.")
        deps[name] = found
    return deps


def step_order(pipe: PipelineJobSpec) -> list[str]:
    """A topological order of the steps; a cycle is an error naming its steps."""
    deps = dependencies({k: v.model_dump() for k, v in pipe.jobs.items()})
    order: list[str] = []
    remaining = dict(deps)
    while remaining:
        ready = sorted(n for n, d in remaining.items() if d <= set(order))
        if not ready:
            raise SpecError(f"the steps {', '.join(sorted(remaining))} depend on each other in a "
                            "cycle", field="jobs")
        order += ready
        for n in ready:
            remaining.pop(n)
    return order


def _bind(value: Any, parent_inputs: Mapping[str, Any], outputs_of: Mapping[str, Path]) -> Any:
    def sub(text: str) -> str:
        text = _STEP_REF.sub(lambda m: str(outputs_of[m.group(1)] / m.group(2)), text)

        def parent_in(m: re.Match[str]) -> str:
            v = parent_inputs.get(m.group(1))
            if isinstance(v, Mapping):
                v = v.get("path", v.get("value", v.get("default")))
            return str(v)

        return _PARENT_IN.sub(parent_in, text)

    if isinstance(value, str):
        whole = _PARENT_IN.fullmatch(value.strip())
        if whole:
            return parent_inputs.get(whole.group(1))
        return sub(value)
    if isinstance(value, Mapping):
        out = {k: _bind(v, parent_inputs, outputs_of) for k, v in value.items()}
        inner = out.get("path")
        if isinstance(inner, Mapping):  # path: ${{parent.inputs.x}} where x is a typed input
            out = {**inner, **{k: v for k, v in out.items() if k != "path"}}
        return out
    return value


def _submit_step(ws: Workspace, pipeline_id: str, name: str, step: dict[str, Any],
                 pipe: dict[str, Any], outputs_of: Mapping[str, Path]) -> str:
    base = Path(pipe.get("base_dir", "."))
    parent_inputs = pipe.get("inputs", {})
    inputs = {k: _bind(v, parent_inputs, outputs_of) for k, v in step.get("inputs", {}).items()}
    inputs = {k: _absolute(v, base) for k, v in inputs.items()}
    outputs = {k: _step_output(v, pipe.get("outputs") or {}, pipeline_id)
               for k, v in (step.get("outputs") or {}).items()}
    settings = pipe.get("settings") or {}
    compute = (settings.get("resolved_computes") or {}).get(name) or step.get("compute") \
        or pipe.get("compute")
    note = (settings.get("compute_notes") or {}).get(name)
    common: dict[str, Any] = {"compute": compute, "experiment": pipe.get("experiment_name"),
                              "_parent": (pipeline_id, name)}
    if step.get("type") == "sweep":  # trials of the step's sweep are its children
        from jupyter_mlws.sweeps.submit import submit_sweep_step

        return submit_sweep_step(ws, step, inputs, outputs, base, compute, common)
    code = step.get("code")
    code_path = str((base / code).resolve()) if code else None
    timeout = iso_duration_seconds((step.get("limits") or {}).get("timeout"))
    display = step.get("display_name") or name
    if step.get("notebook"):
        params = {k: _bind(v, parent_inputs, outputs_of)
                  for k, v in (step.get("parameters") or {}).items()}
        job = ws.jobs.submit_notebook(base / step["notebook"], params,
                                      environment=step.get("environment"), inputs=inputs,
                                      outputs=outputs, code=code_path, display_name=display,
                                      timeout=timeout, _notes=[note] if note else None,
                                      environment_variables=step.get("environment_variables"),
                                      **common)
        return job.id
    command = step.get("command")
    environment = step.get("environment")
    if step.get("component"):
        comp = _component(ws, step["component"], base)
        if comp.get("type") == "pipeline":
            return _submit_sub_pipeline(ws, comp, inputs, name, pipeline_id, compute)
        command = comp["command"]
        environment = comp["environment"]
        code_path = comp.get("code") or code_path
        _component_io(comp, inputs, outputs)
    if not command:
        raise SpecError(f"step {name!r} has no command", field=f"jobs.{name}")
    job = ws.jobs.submit_command(command, code=code_path, environment=environment,
                                 inputs=inputs, outputs=outputs, display_name=display,
                                 timeout=timeout, _notes=[note] if note else None,
                                 environment_variables=step.get("environment_variables"),
                                 **common)
    _link_parent_outputs(ws, pipeline_id, step, job.id)
    return job.id


def _component_io(comp: Mapping[str, Any], inputs: dict[str, Any],
                  outputs: dict[str, Any]) -> None:
    """Give the step's inputs the component's types and defaults, and its outputs' types."""
    for key, decl in comp.get("inputs", {}).items():
        if key not in inputs and decl.get("default") is not None:
            inputs[key] = {"type": decl.get("type"), "value": decl["default"]}
        elif key in inputs and decl.get("type") and isinstance(inputs[key], Mapping):
            inputs[key] = {"type": decl["type"], **inputs[key]}
        elif key in inputs and decl.get("type"):
            inputs[key] = {"type": decl["type"], "value": inputs[key]}
        if key in inputs and decl.get("optional"):
            inputs[key] = {**inputs[key], "optional": True}
    for key, decl in comp.get("outputs", {}).items():
        given = outputs.get(key) or {}
        outputs[key] = {**given, "type": given.get("type") or decl.get("type", "uri_folder")}


def _step_output(value: Any, pipe_outputs: Mapping[str, Any], pipeline_id: str
                 ) -> dict[str, Any]:
    """A step's output declaration. Bound to ``${{parent.outputs.X}}`` where the pipeline gives
    ``X`` a ``path`` (a datastore URI), the step writes there: the path, with ``${{name}}``
    read as the pipeline job's name, becomes the step output's own."""
    text = value.get("path") if isinstance(value, Mapping) else value
    m = _PARENT_OUT.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        return dict(value) if isinstance(value, Mapping) else {"type": "uri_folder"}
    own = {k: v for k, v in value.items() if k != "path"} if isinstance(value, Mapping) else {}
    decl = pipe_outputs.get(m.group(1))
    if isinstance(decl, Mapping):
        own = {**{k: v for k, v in decl.items() if v is not None}, **own}
        if isinstance(own.get("path"), str):
            own["path"] = own["path"].replace("${{name}}", pipeline_id)
    own.setdefault("type", "uri_folder")
    return own


def _link_parent_outputs(ws: Workspace, pipeline_id: str, step: Mapping[str, Any],
                         child_id: str) -> None:
    """A step output bound to ``${{parent.outputs.X}}`` is the pipeline's output ``X``
    (a link, in the pipeline job's outputs folder, to where the step writes it)."""
    import os

    pipe_out = ws.jobs.paths(pipeline_id).outputs
    child_out = ws.jobs.paths(child_id).outputs
    for out, value in (step.get("outputs") or {}).items():
        text = value.get("path") if isinstance(value, Mapping) else value
        m = _PARENT_OUT.fullmatch(text.strip()) if isinstance(text, str) else None
        if m is None:
            continue
        link = pipe_out / m.group(1)
        if not link.is_symlink() and not link.exists():
            pipe_out.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(child_out / out, pipe_out))


def _submit_sub_pipeline(ws: Workspace, comp: Mapping[str, Any], inputs: Mapping[str, Any],
                         name: str, pipeline_id: str, compute: str | None) -> str:
    """A ``pipelineComponent`` step: a child pipeline whose inputs are the step's."""
    spec = {"type": "pipeline", "jobs": comp.get("jobs") or {}, "inputs": dict(inputs),
            "outputs": comp.get("outputs") or {}, "display_name": name}
    job = ws.jobs.submit_pipeline(spec, base_dir=Path(comp.get("base_dir") or "."),
                                  compute=compute, _parent=(pipeline_id, name))
    return job.id


def _absolute(value: Any, base: Path) -> Any:
    from jupyter_mlws.assets.base import looks_like_ref

    def fix(text: str) -> str:
        if "://" in text or looks_like_ref(text) or Path(text).is_absolute():
            return text
        candidate = base / text
        return str(candidate.resolve()) if candidate.exists() else text

    if isinstance(value, str):
        return fix(value)
    if isinstance(value, Mapping) and isinstance(value.get("path"), str):
        return {**value, "path": fix(value["path"])}
    return value


def _component(ws: Workspace, ref: Any, base: Path) -> dict[str, Any]:
    """The component of a step as a plain mapping: a registered one (``azureml:name@latest``),
    or a local one (``file:./x.yml``, ``./x.yml`` or inline), registered anonymously by content
    so that two pipelines whose components share a name never collide. A pipeline component
    (``type: pipeline``) is returned as it is, with the folder its paths are relative to."""
    from jupyter_mlws.artifacts import StoredArtifact
    from jupyter_mlws.assets.yaml_io import load_yaml
    from jupyter_mlws.jobs.azure_compat import refuse_cloud_only

    if isinstance(ref, str) and ref.startswith("file:"):
        ref = ref[len("file:"):]
    if isinstance(ref, str) and ref.endswith((".yml", ".yaml")):
        path = (base / ref).resolve()
        data, index = load_yaml(path)
        if not isinstance(data, dict):
            raise SpecError("expected a mapping of fields", file=str(path), line=1)
        refuse_cloud_only(data, where=str(path))
        if data.get("type") == "pipeline":
            return {**data, "base_dir": str(path.parent)}
        comp = ws.components.create_anonymous(data, base_dir=path.parent, source=str(path),
                                              index=index)
    elif isinstance(ref, str):
        comp = ws.components.get(ref)
    else:
        refuse_cloud_only(ref, where="an inline component")
        if ref.get("type") == "pipeline":
            return {**ref, "base_dir": str(base)}
        comp = ws.components.create_anonymous(ref, base_dir=base, source="<inline component>")
    data = dict(comp.spec)
    art = data.get("code_artifact")
    if art:  # lay out the component's code snapshot where the step can take it from
        folder = ws.artifacts.root / "components" / f"{comp.name}-{comp.version}"
        if not folder.exists():
            ws.artifacts.materialize(StoredArtifact.from_dict(art), folder)
        data["code"] = str(folder)
    return data


class PipelineHandle:
    """The running pipeline: each poll submits the steps whose dependencies completed and
    collects the states of the steps that ended."""

    def __init__(self, ws: Workspace, ctx: RunContext, pipe: dict[str, Any]) -> None:
        self.started_at = time.time()
        self._ws = ws
        self._ctx = ctx
        self._pipe = pipe
        self._steps: dict[str, dict[str, Any]] = rewrite_parent_outputs(pipe["jobs"])
        self._deps = dependencies(self._steps)
        self.children: dict[str, str] = {}
        self.state: dict[str, JobStatus] = {}
        self._outputs_of: dict[str, Path] = {}
        #: Steps not run because a step they depend on did not complete.
        self.skipped: list[str] = []
        #: Why each failed step failed, in the order they failed.
        self.causes: dict[str, str] = {}
        self._canceled = False
        self._next_poll = 0.0
        self._log: BinaryIO | None = None
        with contextlib.suppress(OSError):  # a link planted at the log: no log lines
            self._log = open_log_for_append(ctx.paths.job_log)

    def _say(self, text: str) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.write(f"[pipeline] {text}\n".encode())

    @property
    def failed(self) -> list[str]:
        return sorted(n for n, s in self.state.items() if s == JobStatus.FAILED)

    def poll(self) -> int | None:
        if len(self.state) >= len(self._steps):
            return 1 if self.failed else 0
        now = time.monotonic()
        if now < self._next_poll:
            return None
        self._next_poll = now + POLL_S
        self._submit_ready()
        self._collect()
        if len(self.state) < len(self._steps):
            return None
        result = {"steps": {n: {"job": self.children.get(n),
                                "status": "Skipped" if n in self.skipped else self.state[n].value}
                            for n in self._steps}}
        write_json(self._ctx.paths.result, result)
        return 1 if self.failed else 0

    def _submit_ready(self) -> None:
        for name in self._steps:
            if name in self.state or name in self.children:
                continue
            failed_deps = [d for d in self._deps[name]
                           if self.state.get(d) in (JobStatus.FAILED, JobStatus.CANCELED)]
            if failed_deps or self._canceled:
                why = (f"skipped: the step(s) it depends on did not complete "
                       f"({', '.join(failed_deps)})" if failed_deps else "pipeline canceled")
                self.state[name] = JobStatus.CANCELED
                if failed_deps:
                    self.skipped.append(name)
                self._say(f"{name}: {why}")
                continue
            if all(self.state.get(d) == JobStatus.COMPLETED for d in self._deps[name]):
                try:
                    child = _submit_step(self._ws, self._ctx.job_id, name, self._steps[name],
                                         self._pipe, self._outputs_of)
                except MlwsError as exc:
                    self.state[name] = JobStatus.FAILED
                    self.causes[name] = f"could not be submitted: {exc}"
                    self._say(f"{name}: could not be submitted: {exc}")
                    continue
                self.children[name] = child
                self._outputs_of[name] = self._ws.jobs.paths(child).outputs
                self._say(f"{name}: submitted as job {child}")

    def _collect(self) -> None:
        for name, child in list(self.children.items()):
            if name in self.state:
                continue
            job = self._ctx.store.get_job(child)
            if job.done:
                self.state[name] = JobStatus(job.status)
                if job.status == JobStatus.FAILED.value:
                    step = self._ws.jobs.paths(child)
                    self.causes[name] = _cause(job.error, step.job_log, step.root)
                self._say(f"{name}: {job.status}" + (f" ({job.error})" if job.error else ""))

    def stop(self, grace: float = 0.0) -> None:
        """Cancel the running steps; the steps not started yet are skipped."""
        if self._canceled:
            return
        self._canceled = True
        for name, child in self.children.items():
            if name not in self.state:
                self._ws.jobs.cancel(child)
        self._next_poll = 0.0

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


class PipelineRun(JobTemplate):
    """A pipeline job on the job template: preparing reads the steps, starting orchestrates
    them; the pipeline's final state follows its steps'."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._handle: PipelineHandle | None = None

    def prepare(self, ctx: RunContext) -> Runtime:
        pipe = ctx.store.get_job(ctx.job_id).spec
        dependencies(pipe["jobs"])  # refuses unknown steps before anything runs
        return Runtime(details={"pipeline": pipe})

    def start(self, ctx: RunContext, runtime: Runtime) -> PipelineHandle:
        self._handle = PipelineHandle(self._ws, ctx, runtime.details["pipeline"])
        return self._handle

    def outcome(self, ctx: RunContext, code: int) -> tuple[JobStatus, str | None]:
        handle = self._handle
        if handle is None or not handle.failed:
            return JobStatus.COMPLETED, None
        causes = handle.causes or {n: "failed" for n in handle.failed}
        return JobStatus.FAILED, failure_line(causes, handle.skipped)


def _cause(error: str | None, log: Path, root: Path) -> str:
    """A failed step's error, with the last line it printed (usually the reason); the log is
    read as a job-written file under the step's folder ``root`` (no link followed)."""
    from jupyter_mlws.errors import UnsafePathError
    from jupyter_mlws.jobs.safe_files import open_job_file

    last = ""
    try:
        with open_job_file(log, root) as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [x.strip() for x in f.read().decode("utf-8", "replace").splitlines()]
        last = next((x for x in reversed(lines) if x and not x.startswith("[mlws]")), "")
    except (OSError, UnsafePathError):
        pass
    text = error or "failed"
    return f"{text} (last output: {last[:300]})" if last else text


def failure_line(causes: Mapping[str, str], skipped: list[str]) -> str:
    """``step 'train' failed: <why>`` for the first step that failed, then what else did not
    run."""
    first, why = next(iter(causes.items()))
    text = f"step {first!r} failed: {why}"
    others = [n for n in causes if n != first]
    if others:
        text += f"; also failed: {', '.join(others)}"
    if skipped:
        text += f"; skipped: {', '.join(skipped)}"
    return text


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically."""
    write_json_atomic(path, data, mode=0o644)
