"""Pipelines: steps wired by ``${{parent.jobs.A.outputs.o}}`` run as child jobs, in dependency
order, independent ones side by side (each child's runner takes a slot of its compute, so the
compute's limit holds). A failed step fails the steps that depend on it; the others go on.

A pipeline runs on the same job template as every job (:class:`PipelineRun`): the template owns
its states, cancel and outcome; this module only starts the steps and follows them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.compute.base import JobTemplate, RunContext, Runtime
from jupyter_mlws.errors import MlwsError, SpecError
from jupyter_mlws.jobs.model import JobStatus

if TYPE_CHECKING:
    from jupyter_mlws.assets.job import PipelineJobSpec
    from jupyter_mlws.workspace import Workspace

_STEP_REF = re.compile(r"\$\{\{\s*parent\.jobs\.([A-Za-z0-9_\-]+)\.outputs\.([A-Za-z0-9_]+)\s*\}\}")
_PARENT_IN = re.compile(r"\$\{\{\s*parent\.inputs\.([A-Za-z0-9_]+)\s*\}\}")
POLL_S = 0.2


def _refs(value: Any) -> list[tuple[str, str]]:
    text = value if isinstance(value, str) else (
        value.get("path") if isinstance(value, Mapping) else None)
    return _STEP_REF.findall(text) if isinstance(text, str) else []


def dependencies(steps: Mapping[str, Any]) -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for name, step in steps.items():
        inputs = step["inputs"] if isinstance(step, Mapping) else step.inputs
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
        return {k: _bind(v, parent_inputs, outputs_of) for k, v in value.items()}
    return value


def _submit_step(ws: Workspace, pipeline_id: str, name: str, step: dict[str, Any],
                 pipe: dict[str, Any], outputs_of: Mapping[str, Path]) -> str:
    base = Path(pipe.get("base_dir", "."))
    parent_inputs = pipe.get("inputs", {})
    inputs = {k: _bind(v, parent_inputs, outputs_of) for k, v in step.get("inputs", {}).items()}
    inputs = {k: _absolute(v, base) for k, v in inputs.items()}
    outputs = {k: (v if isinstance(v, Mapping) else {"type": "uri_folder"})
               for k, v in (step.get("outputs") or {}).items()}
    compute = step.get("compute") or pipe.get("compute")
    common: dict[str, Any] = {"compute": compute, "experiment": pipe.get("experiment_name"),
              "_parent": (pipeline_id, name)}
    code = step.get("code")
    code_path = str((base / code).resolve()) if code else None
    if step.get("notebook"):
        params = {k: _bind(v, parent_inputs, outputs_of)
                  for k, v in (step.get("parameters") or {}).items()}
        job = ws.jobs.submit_notebook(base / step["notebook"], params,
                                      environment=step.get("environment"), inputs=inputs,
                                      outputs=outputs, code=code_path, display_name=name,
                                      **common)
        return job.id
    command = step.get("command")
    environment = step.get("environment")
    if step.get("component"):
        comp = _component(ws, step["component"], base)
        command = comp["command"]
        environment = comp["environment"]
        code_path = comp.get("code") or code_path
        for key, decl in comp.get("inputs", {}).items():
            if key not in inputs and decl.get("default") is not None:
                inputs[key] = {"type": decl.get("type"), "value": decl["default"]}
            elif key in inputs and decl.get("type") and isinstance(inputs[key], Mapping):
                inputs[key].setdefault("type", decl["type"])
            elif key in inputs and decl.get("type"):
                inputs[key] = {"type": decl["type"], "value": inputs[key]}
            if key in inputs and decl.get("optional"):
                inputs[key] = {**inputs[key], "optional": True}
        for key, decl in comp.get("outputs", {}).items():
            outputs.setdefault(key, {"type": decl.get("type", "uri_folder")})
    if not command:
        raise SpecError(f"step {name!r} has no command", field=f"jobs.{name}")
    job = ws.jobs.submit_command(command, code=code_path, environment=environment,
                                 inputs=inputs, outputs=outputs, display_name=name, **common)
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
    """A registered component (by reference) or an inline/YAML one, as a plain mapping."""
    from jupyter_mlws.artifacts import StoredArtifact

    if isinstance(ref, str) and ref.endswith((".yml", ".yaml")):
        comp = ws.create_from_file(base / ref, kind="component")
    elif isinstance(ref, str):
        comp = ws.components.get(ref)
    else:
        from jupyter_mlws.assets.component import ComponentSpec

        comp = ws.components.register(ComponentSpec.model_validate(
            {"name": "inline-component", **ref}))
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
        self._steps: dict[str, dict[str, Any]] = pipe["jobs"]
        self._deps = dependencies(self._steps)
        self.children: dict[str, str] = {}
        self.state: dict[str, JobStatus] = {}
        self._outputs_of: dict[str, Path] = {}
        self._canceled = False
        self._next_poll = 0.0
        self._log = open(ctx.paths.job_log, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def _say(self, text: str) -> None:
        self._log.write(f"[pipeline] {text}\n")
        self._log.flush()

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
        result = {"steps": {n: {"job": self.children.get(n), "status": self.state[n].value}
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
                self.state[name] = JobStatus.FAILED if failed_deps else JobStatus.CANCELED
                self._say(f"{name}: {why}")
                continue
            if all(self.state.get(d) == JobStatus.COMPLETED for d in self._deps[name]):
                try:
                    child = _submit_step(self._ws, self._ctx.job_id, name, self._steps[name],
                                         self._pipe, self._outputs_of)
                except MlwsError as exc:
                    self.state[name] = JobStatus.FAILED
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
        failed = self._handle.failed if self._handle is not None else []
        if failed:
            return JobStatus.FAILED, f"step(s) failed: {', '.join(failed)}"
        return JobStatus.COMPLETED, None


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
