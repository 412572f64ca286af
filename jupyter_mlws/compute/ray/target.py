"""The Ray compute target: checks at submission, runtime env and entrypoint, submit and
follow, and the outcome as Ray reports it."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.compute.base import ComputeTarget, Handle, RunContext, Runtime
from jupyter_mlws.compute.ray import via_store
from jupyter_mlws.compute.ray.client import (
    HTTP_TIMEOUT_S,
    PROBE_TIMEOUT_S,
    RayJobsClient,
    normalize_address,
    token_from,
)
from jupyter_mlws.compute.ray.handle import RayJobHandle
from jupyter_mlws.compute.ray.packaging import package_zip, under
from jupyter_mlws.compute.units import parse_memory
from jupyter_mlws.errors import MlwsError, UnsupportedEnvironmentError, ValidationError
from jupyter_mlws.jobs.mlflow_store import add_tracking_env
from jupyter_mlws.jobs.model import JobStatus
from jupyter_mlws.jobs.paths import JobPaths

if TYPE_CHECKING:
    from jupyter_mlws.assets.compute import Compute
    from jupyter_mlws.compute.services import TargetServices
    from jupyter_mlws.jobs.launch import Launch

PENDING_STOP_WAIT_S = 7.0  # how long a cancel waits for a job Ray has not started yet


class RayTarget(ComputeTarget):
    kind = "ray"

    def __init__(self, services: TargetServices, compute: Compute) -> None:
        super().__init__(services, compute)
        self._handle: RayJobHandle | None = None
        self._result_key: bytes | None = None
        self._from_conda: list[tuple[str, str]] = []  # (conda dependency, pip requirement)

    # settings
    @property
    def ray_settings(self) -> dict[str, Any]:
        return dict(self.compute.spec.get("settings") or {})

    @property
    def address(self) -> str:
        address = self.compute.spec.get("address") or self.ray_settings.get("address")
        if not address:
            raise ValidationError(
                f"The Ray compute {self.compute.name!r} has no address.",
                hint="Give the head's dashboard address: `mlws compute create --type ray "
                "--address http://HEAD:8265 ...`.")
        return normalize_address(str(address))

    def client(self, timeout: float = HTTP_TIMEOUT_S) -> RayJobsClient:
        return RayJobsClient(self.address, token=token_from(self.ray_settings, self.compute.name),
                             timeout=timeout)

    def shared_paths(self) -> list[Path]:
        raw = self.ray_settings.get("shared_paths") or []
        if isinstance(raw, str):
            raw = [raw]
        out = []
        for p in raw:
            if not os.path.isabs(str(p)):
                raise ValidationError(
                    f"The Ray compute {self.compute.name!r} lists the shared path {p!r}, "
                    "which is not absolute.", hint="Give absolute paths in settings.shared_paths.")
            out.append(Path(os.path.realpath(str(p))))
        return out

    def _remote_store(self) -> Any:
        """The workspace's artifact store when it is remote (``artifact_uri``), else None."""
        artifacts = getattr(self.services, "artifacts", None)
        return artifacts if artifacts is not None and artifacts.remote is not None else None

    # checks shared by plan() and prepare()
    def _check_storage(self, launch: Launch) -> bool:
        """Whether the job's files go through the artifact store (no shared paths)."""
        shared = self.shared_paths()
        root = self.services.artifact_root
        if not shared:
            if self._remote_store() is not None:
                via_store.check_inputs(launch, JobPaths.of(root, launch.job_id),
                                       self.compute.name)
                return True
            raise ValidationError(
                f"The Ray compute {self.compute.name!r} does not say which storage its nodes "
                f"share, and the workspace keeps its artifacts in a local folder, so the job's "
                f"files (under {str(root)!r}) cannot reach them.",
                hint="Either give the workspace an artifact store the nodes can reach "
                "(artifact_uri: s3://BUCKET/PREFIX in workspace.yaml, or MLWS_ARTIFACT_URI; the "
                "job's files then go through it), or mount the workspace's artifact folder at the "
                "same path on every node and list it in the compute's settings.shared_paths "
                f"(e.g. settings: {{shared_paths: [{str(root.parent)!r}]}}).")
        if not under(root, shared):
            raise ValidationError(
                f"The Ray compute {self.compute.name!r} cannot reach this workspace's storage: "
                f"its artifact folder {str(root)!r} is not under its shared paths "
                f"({', '.join(map(str, shared))}).",
                hint="Put the workspace on storage every node mounts at the same path, and list "
                "that path in settings.shared_paths.")
        for mount in launch.mounts:
            if "://" not in str(mount) and not under(mount, shared):
                raise ValidationError(
                    f"The input {str(mount)!r} is not on storage the Ray compute "
                    f"{self.compute.name!r} shares ({', '.join(map(str, shared))}).",
                    hint="Register the input as data (it is then copied into the job's folder), "
                    "or move it under a shared path.")
        return False

    def _environment(self, launch: Launch) -> tuple[Any, list[str], list[str]]:
        """``(environment or None, pip requirements, notes)``; refuses what Ray cannot run."""
        ref = launch.environment
        if not ref:
            return None, [], []
        env = self.services.environment(ref)
        spec = env.definition()
        who = f"The environment {ref}"
        hint = ("Ray jobs here run in the nodes' Python with the environment's pip packages; "
                "use an environment of pip packages, or a docker compute target.")
        if spec.kind == "context":
            raise UnsupportedEnvironmentError(
                f"{who} is a Docker build context, which the Ray compute "
                f"{self.compute.name!r} cannot run (container runtimes are not supported yet).",
                hint=hint)
        if spec.kind == "image":
            raise UnsupportedEnvironmentError(
                f"{who} is the ready Docker image {spec.image}, which the Ray compute "
                f"{self.compute.name!r} cannot run (container runtimes are not supported yet).",
                hint=hint)
        if spec.docker_steps:
            raise UnsupportedEnvironmentError(
                f"{who} has Docker steps ({spec.docker_steps[0]!r}...), which the Ray compute "
                f"{self.compute.name!r} cannot run (container runtimes are not supported yet).",
                hint=hint)
        notes = []
        from_conda: list[str] = []
        if spec.conda_file:
            from jupyter_mlws.environments.conda_pypi import translate_conda

            translation = translate_conda(spec.conda_file)  # CondaTranslationError names them
            from_conda = translation.from_conda
            origin = {req: dep for dep, req in translation.translated}
            self._from_conda = [(origin.get(r, r), r) for r in from_conda]
            if from_conda:
                notes.append("conda file translated to PyPI (conda channels are not reachable):"
                             f" {', '.join(from_conda)}; Ray's pip installs them")
            notes.extend(translation.notes)
            if translation.python:
                notes.append(f"the conda file asks for {translation.python}; the nodes' Python "
                             "is used")
        from jupyter_mlws.assets.environment import DEFAULT_BASE_IMAGE

        if spec.image and spec.image != DEFAULT_BASE_IMAGE:
            notes.append(f"the base image {spec.image} is not used on Ray: the nodes' Python "
                         "runs the job")
        pip = [r for r in [*from_conda, *spec.pip_packages()]
               if r.strip() and not r.strip().startswith("#")]
        return env, pip, notes

    def _check_index(self) -> None:
        """Ask this machine's package index (the one the nodes' pip is set up with, as a rule)
        for every requirement made from a conda dependency, as the venv builder does."""
        if not self._from_conda:
            return
        from packaging.requirements import Requirement

        from jupyter_mlws.environments.conda_pypi import missing_on_index, no_pypi_error
        from jupyter_mlws.environments.machine import pip_index_urls

        urls = pip_index_urls()
        names = {Requirement(req).name: dep for dep, req in self._from_conda}
        missing = missing_on_index(list(names), urls[0] if urls else None)
        if missing:
            raise no_pypi_error([f"{names[n]} (the package index has no {n!r})"
                                 for n in missing])

    def _entrypoint_resources(self) -> dict[str, Any]:
        spec, s = self.compute.spec, self.ray_settings
        out: dict[str, Any] = {}
        cpus = s.get("num_cpus", spec.get("cpus"))
        out["entrypoint_num_cpus"] = 1 if cpus is None else float(cpus)
        gpus = spec.get("gpus")
        if gpus not in (None, 0, "0"):
            try:
                out["entrypoint_num_gpus"] = float(gpus)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"The Ray compute {self.compute.name!r} asks for gpus={gpus!r}.",
                    hint="Give a number of GPUs per job.") from None
        if spec.get("memory"):
            out["entrypoint_memory"] = parse_memory(str(spec["memory"]))
        resources = s.get("resources")
        if resources:
            if not isinstance(resources, dict):
                raise ValidationError(f"settings.resources of {self.compute.name!r} must be a "
                                      "mapping of resource name to amount, e.g. {GPU: 1}.")
            custom = {str(k): float(v) for k, v in resources.items()}
            for key, field in (("CPU", "entrypoint_num_cpus"), ("GPU", "entrypoint_num_gpus")):
                if key in custom:
                    out[field] = custom.pop(key)
            if custom:
                out["entrypoint_resources"] = custom
        return out

    # --- the contract ------------------------------------------------------------------------

    def plan(self, launch: Launch) -> Runtime | None:
        """At submission: storage, environment and the head's reachability (one HTTP GET)."""
        self._check_storage(launch)
        self._environment(launch)
        self._entrypoint_resources()
        self.client(timeout=PROBE_TIMEOUT_S).version()
        return None  # the runner submits: runtime env setup happens on the cluster

    def prepare(self, ctx: RunContext) -> Runtime:
        launch = ctx.launch
        through_store = self._check_storage(launch)
        client = self.client()
        version = client.version()
        nodes = [n for n in client.nodes() if (n.get("raylet") or {}).get("state") == "ALIVE"]
        ctx.prepare_log(f"[mlws] Ray cluster {client.address} (Ray {version.get('ray_version')}"
                        f"): {len(nodes)} node(s) alive")
        env, pip, notes = self._environment(launch)
        for note in notes:
            ctx.prepare_log(f"[mlws] note: {note}")
        self._check_index()
        resources = self._entrypoint_resources()
        self._check_resources(resources, nodes)

        env_vars = {str(k): str(v) for k, v in launch.env.items()}
        add_tracking_env(env_vars, launch.env, cwd=launch.cwd)
        runtime_env: dict[str, Any] = {"env_vars": env_vars}
        if pip:
            runtime_env["pip"] = pip
        shared = self.shared_paths()
        lib = launch.pythonpath
        if lib and under(lib, shared) and under(launch.package_dir, shared):
            env_vars["PYTHONPATH"] = lib
            package = f"PYTHONPATH={lib} (shared storage)"
        else:
            name, size = self._ship_package(client, Path(launch.package_dir))
            runtime_env["py_modules"] = [f"gcs://{name}"]
            package = f"py_modules gcs://{name}" + (f" (uploaded, {size // 1024} KB)"
                                                     if size else " (already on the cluster)")
        ctx.prepare_log("[mlws] runtime env: "
                        + (f"pip {' '.join(pip)}" if pip else "the nodes' Python, no pip packages")
                        + f"; {len(env_vars)} variables; jupyter_mlws via {package}")

        python = str(self.ray_settings.get("python") or "python")
        argv = [python if a == "{python}" else str(a) for a in launch.argv]
        entrypoint = f"cd {shlex.quote(launch.cwd)} && exec {shlex.join(argv)}"
        if through_store:
            entrypoint = self._through_store(ctx, client, argv, runtime_env, python)
        metadata = {"mlws_job_id": ctx.job_id, "mlws_workspace": str(self.services.workspace_path),
                    "mlws_compute": self.compute.name, "mlws_kind": launch.kind,
                    "job_name": ctx.job_id}
        payload = {"entrypoint": entrypoint, "submission_id": ctx.job_id,
                   "runtime_env": runtime_env, "metadata": metadata, **resources}
        return Runtime(python=f"{python} on Ray {client.address}",
                       env_hash=env.env_hash if env is not None else None,
                       details={"payload": payload, "address": client.address})

    def _through_store(self, ctx: RunContext, client: RayJobsClient, argv: list[str],
                       runtime_env: dict[str, Any], python: str) -> str:
        """Send the job's folder through the artifact store; the worker's entrypoint. The store's
        variables and the result key go in a per-job keys package (``py_modules``), never in
        what the dashboard shows (entrypoint, runtime env, metadata) or a log."""
        artifacts = self._remote_store()
        t0 = time.monotonic()
        tree, dirs, links = via_store.send_job_folder(artifacts, ctx.paths)
        key = self._result_key_of(ctx)
        job = ctx.store.get_job(ctx.job_id)
        ctx.store.update_job(ctx.job_id, spec={**job.spec, via_store.SENT_KEY: tree})
        passed = via_store.store_env()
        keys, data = via_store.keys_package(passed, key)
        client.upload_package(keys, data)
        runtime_env.setdefault("py_modules", []).append(f"gcs://{keys}")
        runtime_env["env_vars"][via_store.SPEC_VAR] = via_store.worker_spec(
            uri=artifacts.remote.uri, tree=tree, dirs=dirs, links=links, paths=ctx.paths, argv=argv,
            cwd=ctx.launch.cwd, keys=keys, job_vars=[k for k in passed if k in ctx.launch.env])
        ctx.prepare_log(f"[mlws] no shared storage: the job's files go through the artifact "
                        f"store {artifacts.location} (tree {tree[:12]}, stored in "
                        f"{time.monotonic() - t0:.1f} s); the node runs them in a temp folder; "
                        "the store's keys go in a per-job package the worker deletes")
        return f"exec {shlex.quote(python)} -m jupyter_mlws.compute.ray.worker"

    def _result_key_of(self, ctx: RunContext) -> bytes:
        """The job's result key: kept in memory, and encrypted (SecretBox) in the job's record
        for a runner that follows the job again; a job prepared again keeps its key."""
        from jupyter_mlws.crypto import SecretBox, is_encrypted

        if self._result_key is None:
            stored = ctx.store.get_job(ctx.job_id).spec.get(via_store.RESULT_KEY_KEY)
            if isinstance(stored, dict) and is_encrypted(stored):
                plain = SecretBox.load(create=False).decrypt(stored, what=f"job {ctx.job_id}")
                self._result_key = bytes.fromhex(plain["key"])
            else:
                self._result_key = via_store.new_result_key()
                box = SecretBox.load(create=True)
                job = ctx.store.get_job(ctx.job_id)
                ctx.store.update_job(ctx.job_id, spec={
                    **job.spec,
                    via_store.RESULT_KEY_KEY: box.encrypt({"key": self._result_key.hex()})})
        return self._result_key

    def _fetch_results(self, ctx: RunContext) -> None:
        """Lay out what the worker stored (a job through the artifact store), once it ended."""
        artifacts = self._remote_store()
        handle = self._handle
        if artifacts is None or handle is None or self.shared_paths():
            return
        tree = via_store.result_tree(handle.client.logs(ctx.job_id), self._result_key_of(ctx))
        if tree is None:
            ctx.prepare_log("[mlws] the Ray worker reported no files of the job (no result line "
                            "authenticated with the job's key)")
            return
        job = ctx.store.get_job(ctx.job_id)
        ctx.store.update_job(ctx.job_id, spec={**job.spec, via_store.RESULT_KEY: tree})
        count = via_store.fetch_results(artifacts, tree, ctx.paths)
        ctx.prepare_log(f"[mlws] fetched {count} file(s) the job wrote on the node (tree "
                        f"{tree[:12]})")

    def _check_resources(self, resources: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
        need = dict(resources.get("entrypoint_resources") or {})
        if resources.get("entrypoint_num_cpus"):
            need["CPU"] = resources["entrypoint_num_cpus"]
        if resources.get("entrypoint_num_gpus"):
            need["GPU"] = resources["entrypoint_num_gpus"]
        if resources.get("entrypoint_memory"):
            need["memory"] = resources["entrypoint_memory"]
        if not need or self.ray_settings.get("autoscaling"):
            return
        for node in nodes:
            have = (node.get("raylet") or {}).get("resourcesTotal") or {}
            if all(float(have.get(k, 0)) >= float(v) for k, v in need.items()):
                return
        offered = "; ".join(
            f"{n.get('ip')}: " + ", ".join(f"{k}={v:g}" for k, v in sorted(
                ((n.get("raylet") or {}).get("resourcesTotal") or {}).items())
                if not k.startswith("node:") and k not in ("memory", "objectStoreMemory"))
            for n in nodes) or "no live node"
        raise MlwsError(
            f"No node of the Ray cluster at {self.address} offers what a job on "
            f"{self.compute.name!r} asks for ({', '.join(f'{k}={v:g}' for k, v in need.items())}"
            f"). Its nodes: {offered}.",
            hint="Change the compute's cpus/gpus/memory/settings.resources, or set "
            "settings.autoscaling: true if the cluster adds such nodes on demand.")

    def _ship_package(self, client: RayJobsClient, pkg_dir: Path) -> tuple[str, int]:
        name, data = package_zip(pkg_dir)
        if client.package_exists(name):
            return name, 0
        client.upload_package(name, data)
        return name, len(data)

    def start(self, ctx: RunContext, runtime: Runtime) -> RayJobHandle:
        client = self.client()
        payload = runtime.details["payload"]
        try:
            client.submit(payload)
        except MlwsError as exc:
            if "already exists" not in str(exc) or client.info(ctx.job_id) is None:
                raise
            ctx.prepare_log(f"[mlws] the Ray job {ctx.job_id} exists already; following it")
        described = ", ".join(f"{k.removeprefix('entrypoint_')}={v}" for k, v in payload.items()
                              if k.startswith("entrypoint_"))
        ctx.prepare_log(f"[mlws] submitted to Ray as {ctx.job_id} ({described}); waiting for "
                        "the cluster to start it")
        handle = RayJobHandle(client, ctx.job_id, ctx.paths.job_log)
        self._handle = handle
        timeout = ctx.launch.timeout
        t0 = time.monotonic()
        last_message = None
        last_cancel = 0.0
        while not handle.done and handle.status == "PENDING":
            message = handle.info.get("message")
            if message and message != last_message:
                ctx.prepare_log(f"[mlws] Ray: PENDING: {message}")
                last_message = message
            now = time.monotonic()
            if now - last_cancel >= 0.25:
                last_cancel = now
                if ctx.cancel_requested():
                    self._stop_pending(handle)  # outcome() reports Canceled
                    return handle
            if timeout and now - t0 > float(timeout):
                self._stop_pending(handle)
                handle.close()
                raise MlwsError(f"timed out after {timeout} s (the job's timeout) before the "
                                "Ray cluster started it")
            handle.wait_change(0.25)
        if handle.status == "FAILED" and handle.info.get("driver_exit_code") is None:
            handle.close()
            message = str(handle.info.get("message") or "no reason given")
            ctx.prepare_log(f"[mlws] Ray: FAILED before the entrypoint ran: {message}")
            raise MlwsError(f"The Ray cluster could not start the job: {message[:2000]}",
                            hint=f"See `mlws job logs {ctx.job_id}`; for a runtime env (pip) "
                            "error, check the environment's packages.")
        handle.started_at = time.time()
        node = handle.node_ip
        ctx.prepare_log(f"[mlws] Ray: {handle.status}" + (f" on node {node}" if node else "")
                        + (f" (node id {handle.info.get('driver_node_id')})"
                           if handle.info.get("driver_node_id") else ""))
        return handle

    def running_recorded(self, handle: Handle) -> None:
        if isinstance(handle, RayJobHandle):
            handle.output_open.set()

    @staticmethod
    def _stop_pending(handle: RayJobHandle) -> None:
        """Ray delivers a stop request only once the job's supervisor has started: a job that
        waits for resources stays PENDING (until RAY_JOB_START_TIMEOUT_SECONDS fails it)."""
        handle.stop(grace=PENDING_STOP_WAIT_S - 5.0)
        if not handle.done:
            handle.abandon("the Ray job was still waiting to start; Ray stops it as soon as it "
                           "starts (or fails it after its start timeout)")

    def outcome(self, ctx: RunContext, code: int) -> tuple[JobStatus, str | None]:
        handle = self._handle
        if handle is not None and handle.abandoned:
            return JobStatus.CANCELED, f"canceled by request; {handle.abandoned}"
        if handle is not None and handle.lost:
            return JobStatus.FAILED, (f"lost the Ray job {ctx.job_id} at {handle.client.address}: "
                              f"{handle.lost}")
        if handle is not None and handle.status == "STOPPED":
            if ctx.cancel_requested():
                return JobStatus.CANCELED, "canceled by request (the Ray job was stopped)"
            return JobStatus.CANCELED, "the Ray job was stopped outside the workspace"
        try:
            self._fetch_results(ctx)
        except MlwsError as exc:
            return JobStatus.FAILED, f"the job's files could not be fetched from the node: {exc}"
        status, message = super().outcome(ctx, code)
        if status == JobStatus.FAILED and handle is not None and not ctx.paths.result.exists():
            ray_message = str(handle.info.get("message") or "").strip()
            if handle.info.get("driver_exit_code") is None and ray_message:
                message = f"Ray: {ray_message.splitlines()[0][:500]}"
            elif ctx.launch.kind == "notebook":
                message = (f"the notebook runner exited with code {code} on the Ray node "
                           f"{handle.node_ip or '?'} before reporting (does the nodes' Python "
                           "have papermill and ipykernel? add them to the environment's pip "
                           f"packages); see `mlws job logs {ctx.job_id}`")
        return status, message

