"""``ray``: the job runs on an existing Ray cluster, through the Ray Jobs REST API.

The workspace process never imports ``ray``: it speaks HTTP to the dashboard of the head node
(``http://HEAD:8265``) with the standard library. A job becomes one Ray job:

- its workspace id is the Ray ``submission_id``, and ``metadata`` names the workspace;
- its entrypoint is ``cd <code snapshot> && exec <argv>`` (``{python}`` is the nodes' ``python``);
- its environment becomes the ``runtime_env``: pip packages as ``pip`` (Ray builds and caches a
  virtualenv per node by content), variables as ``env_vars``. Docker steps, build contexts, ready
  images and conda-only packages are refused until container runtimes are supported;
- the ``jupyter_mlws`` package (for ``from jupyter_mlws import run`` and the notebook runner) is
  put on the nodes' ``PYTHONPATH``: from shared storage when it is there, otherwise uploaded once
  to the cluster as a content-addressed ``py_modules`` package;
- the job's folder (code, inputs, outputs, logs, metrics) must be on storage every node mounts at
  the same path: the compute's ``settings.shared_paths`` lists those prefixes, and submission is
  refused when the workspace's artifact folder (or an input) is not under one;
- ``cpus``/``gpus``/``memory`` and ``settings.resources`` become the entrypoint's resources
  (one CPU per job unless told otherwise, so concurrent jobs spread over the nodes);
- Ray's status drives the job: PENDING (runtime env setup, waiting for resources) is our
  Preparing, RUNNING is Running, SUCCEEDED / FAILED / STOPPED are Completed / Failed / Canceled;
  the Ray log is copied into the job's log while it runs; cancel stops the Ray job.

The optional Ray auth token (Ray's token mode) is read at each request from the environment
variable named by ``settings.token_env`` and sent as ``Authorization: Bearer``; it is never
stored in the compute definition, printed or logged.

Settings (``ws.computes.create(name, type="ray", address=..., settings={...})``):
``shared_paths`` (list of absolute prefixes, required), ``resources`` (custom Ray resources per
job, e.g. ``{"worker": 1}``), ``num_cpus`` (overrides ``cpus``; may be 0), ``python`` (default
``python``), ``token_env``, ``autoscaling`` (do not refuse resources no live node has).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from jupyter_mlws.compute.base import STOP_GRACE_S, ComputeTarget, RunContext, Runtime
from jupyter_mlws.errors import MlwsError, UnsupportedEnvironmentError, ValidationError

DEFAULT_PORT = 8265
HTTP_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 3.0
PENDING_POLL_S = 0.1  # submit -> Running is what a user waits for
STATUS_POLL_S = 0.25
LOG_POLL_S = 0.5
LOG_BYTES_PER_POLL_S = 2_000_000  # a big log is fetched less often (the endpoint sends it whole)
LOST_CONTACT_S = 60.0
STOP_WAIT_S = 30.0
PENDING_STOP_WAIT_S = 7.0  # how long a cancel waits for a job Ray has not started yet
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
PACKAGE_EXCLUDES = frozenset({"__pycache__", "labextension", "node_modules"})


class RayHeadUnreachableError(MlwsError):
    """The Ray head's dashboard does not answer."""

    code = "ray_unreachable"
    http_status = 503


# --- the REST client ---------------------------------------------------------------------------


def normalize_address(address: str) -> str:
    """``HEAD``, ``HEAD:8265`` or ``http(s)://HEAD:8265`` -> ``http(s)://HEAD:PORT``."""
    text = address.strip().rstrip("/")
    if text.startswith("ray://"):
        raise ValidationError(
            f"{address!r} is a Ray Client address; jobs go through the dashboard's Jobs API.",
            hint="Use the dashboard address of the head, e.g. http://HEAD:8265.")
    if "://" not in text:
        text = "http://" + text
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationError(f"{address!r} is not a Ray dashboard address.",
                              hint="Use http://HEAD:8265.")
    port = parsed.port or (DEFAULT_PORT if parsed.scheme == "http" else 443)
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{parsed.scheme}://{host}:{port}{parsed.path}"


_MISSING: Any = object()


class RayJobsClient:
    """The few endpoints of the Ray dashboard this target needs (standard library only)."""

    def __init__(self, address: str, *, token: str | None = None,
                 timeout: float = HTTP_TIMEOUT_S) -> None:
        self.address = normalize_address(address)
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # never shows the token
        return f"RayJobsClient({self.address!r})"

    def _request(self, method: str, path: str, body: Any = None, *, data: bytes | None = None,
                 timeout: float | None = None, missing_ok: bool = False) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        req = urllib.request.Request(self.address + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace").strip()
            if missing_ok and exc.code == 404:
                return _MISSING
            if exc.code in (401, 403):
                first = text.splitlines()[0] if text else str(exc.reason)
                hint = ("The cluster runs in token mode: set the compute's settings.token_env to "
                        "the name of an environment variable, and put the token in it."
                        if exc.code == 401 or not self._token else
                        "Check the token in the environment variable named by the compute's "
                        "settings.token_env.")
                raise MlwsError(f"The Ray head at {self.address} refused the request (HTTP "
                                f"{exc.code}: {first}).", hint=hint) from None
            last = text.splitlines()[-1] if text else str(exc.reason)
            raise MlwsError(f"The Ray head at {self.address} answered {method} {path} with "
                            f"HTTP {exc.code}: {last[:500]}", status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RayHeadUnreachableError(
                f"The Ray head at {self.address} cannot be reached ({reason}).",
                hint="Check that the cluster is up and that its dashboard listens on that "
                "address (ray start --head --dashboard-host ...), then submit again.",
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def version(self, timeout: float | None = None) -> dict[str, Any]:
        return dict(self._request("GET", "/api/version", timeout=timeout) or {})

    def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("POST", "/api/jobs/", payload) or {})

    def info(self, submission_id: str) -> dict[str, Any] | None:
        found = self._request("GET", f"/api/jobs/{urllib.parse.quote(submission_id)}",
                              missing_ok=True)
        return dict(found) if isinstance(found, dict) else None

    def logs(self, submission_id: str) -> str:
        found = self._request("GET", f"/api/jobs/{urllib.parse.quote(submission_id)}/logs",
                              missing_ok=True)
        return str(found.get("logs") or "") if isinstance(found, dict) else ""

    def stop(self, submission_id: str) -> bool:
        found = self._request("POST", f"/api/jobs/{urllib.parse.quote(submission_id)}/stop",
                              missing_ok=True)
        return bool(found.get("stopped")) if isinstance(found, dict) else False

    def nodes(self) -> list[dict[str, Any]]:
        found = self._request("GET", "/nodes?view=summary") or {}
        return list((found.get("data") or {}).get("summary") or [])

    def cluster_status(self) -> dict[str, Any]:
        found = self._request("GET", "/api/cluster_status") or {}
        return dict(found.get("data") or {})

    def package_exists(self, name: str) -> bool:
        """Whether ``gcs://name`` is stored in the cluster (this also pins it for a while)."""
        return self._request("GET", f"/api/packages/gcs/{name}", missing_ok=True) is not _MISSING

    def upload_package(self, name: str, data: bytes) -> None:
        self._request("PUT", f"/api/packages/gcs/{name}", data=data, timeout=120)


# --- the package on the nodes ---------------------------------------------------------------------


def _package_files(pkg_dir: Path) -> list[tuple[str, Path]]:
    out = []
    for root, dirs, files in os.walk(pkg_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in PACKAGE_EXCLUDES)
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(root) / name
            out.append((f"{pkg_dir.name}/{path.relative_to(pkg_dir).as_posix()}", path))
    return out


def package_zip(pkg_dir: Path) -> tuple[str, bytes]:
    """``(gcs package name, zip bytes)`` of the ``jupyter_mlws`` package, named by content."""
    files = _package_files(pkg_dir)
    digest = hashlib.sha256()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, path in files:
            content = path.read_bytes()
            digest.update(arc.encode() + b"\0" + content + b"\0")
            info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return f"_ray_pkg_{digest.hexdigest()[:32]}.zip", buf.getvalue()


# --- paths every node sees ------------------------------------------------------------------------


def _under(path: str | Path, prefixes: list[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == p or p in real.parents for p in prefixes)


# --- the handle ------------------------------------------------------------------------------------


class RayJobHandle:
    """One Ray job: a thread follows its status and copies its log into the job's log."""

    def __init__(self, client: RayJobsClient, submission_id: str, log_path: Path) -> None:
        self.client = client
        self.submission_id = submission_id
        self.started_at = time.time()
        self.status = "PENDING"
        self.info: dict[str, Any] = {}
        self.lost: str | None = None
        self.abandoned: str | None = None
        self._log_path = log_path
        self._written = 0
        self._exit: int | None = None
        self._stop_at: float | None = None
        self._done = threading.Event()
        self._closing = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._follow, daemon=True,
                                        name=f"ray-job-{submission_id}")
        self._thread.start()

    # the follower thread
    def _follow(self) -> None:
        last_ok = time.monotonic()
        log_size = 0
        next_logs = 0.0
        try:
            while not self._closing.is_set():
                now = time.monotonic()
                try:
                    info = self.client.info(self.submission_id)
                    if now >= next_logs:
                        log_size = self._copy_logs()
                        next_logs = now + max(LOG_POLL_S, log_size / LOG_BYTES_PER_POLL_S)
                    last_ok = now
                except MlwsError as exc:
                    if now - last_ok > LOST_CONTACT_S:
                        self.lost = str(exc)
                        self._note(f"lost contact with the Ray head: {exc}")
                        self._exit = 1
                        return
                    self._closing.wait(1.0)
                    continue
                if info is None:
                    self.lost = f"the Ray job {self.submission_id} no longer exists"
                    self._exit = 1
                    return
                self._update(info)
                if self.status in TERMINAL:
                    with contextlib.suppress(MlwsError):
                        self._copy_logs()  # what was written as it ended
                    self._exit = _exit_code(info)
                    return
                if self._stop_at is not None and now - self._stop_at > STOP_WAIT_S:
                    self._note(f"the Ray job did not stop within {STOP_WAIT_S:.0f} s of the "
                               "request; giving up on it")
                    self.status = "STOPPED"
                    self._exit = -signal.SIGTERM
                    return
                self._closing.wait(PENDING_POLL_S if self.status == "PENDING"
                                   else STATUS_POLL_S)
        except Exception as exc:  # the job must end for the runner, never hang it
            self.lost = f"following the Ray job failed: {type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                self._note(self.lost)
            self._exit = 1
        finally:
            self._done.set()
            with self._changed:
                self._changed.notify_all()

    def _update(self, info: dict[str, Any]) -> None:
        with self._changed:
            self.info = info
            self.status = str(info.get("status") or "PENDING")
            self._changed.notify_all()

    def _copy_logs(self) -> int:
        text = self.client.logs(self.submission_id)
        if len(text) > self._written:
            with open(self._log_path, "ab", buffering=0) as f:
                f.write(text[self._written:].encode("utf-8", errors="replace"))
            self._written = len(text)
        return len(text)

    def _note(self, line: str) -> None:
        with open(self._log_path, "a", encoding="utf-8") as f:
            f.write(f"\n[mlws] {line}\n")

    def wait_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def node_ip(self) -> str | None:
        address = self.info.get("driver_agent_http_address")
        return urllib.parse.urlsplit(address).hostname if address else None

    # the Handle protocol
    def poll(self) -> int | None:
        return self._exit if self._done.is_set() else None

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        if self._done.is_set():
            return
        if self._stop_at is None:
            self._stop_at = time.monotonic()
            try:
                self.client.stop(self.submission_id)
            except MlwsError as exc:
                self._note(f"could not ask Ray to stop the job: {exc}")
        self._done.wait(grace + 5.0)

    def abandon(self, note: str) -> None:
        """Stop following a job Ray cannot stop yet (a stop request waits for it to start)."""
        self._note(note)
        self.abandoned = note
        self.status = "STOPPED"
        self._exit = -signal.SIGTERM
        self._closing.set()
        self._done.wait(HTTP_TIMEOUT_S + 1)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=10)


def _exit_code(info: dict[str, Any]) -> int:
    status = info.get("status")
    if status == "SUCCEEDED":
        return 0
    if status == "STOPPED":
        return -signal.SIGTERM
    code = info.get("driver_exit_code")
    return int(code) if isinstance(code, int) and code != 0 else 1


# --- the target -------------------------------------------------------------------------------------


class RayTarget(ComputeTarget):
    kind = "ray"

    def __init__(self, workspace: Any, compute: Any) -> None:
        super().__init__(workspace, compute)
        self._handle: RayJobHandle | None = None

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

    # checks shared by plan() and prepare()
    def _check_storage(self, launch: dict[str, Any]) -> None:
        shared = self.shared_paths()
        root = self.workspace.artifacts.root
        if not shared:
            raise ValidationError(
                f"The Ray compute {self.compute.name!r} does not say which storage its nodes "
                f"share, so the job's files (under {str(root)!r}) cannot reach them.",
                hint="Mount the workspace's artifact folder at the same path on every node and "
                "list it in the compute's settings.shared_paths (e.g. settings: {shared_paths: "
                f"[{str(root.parent)!r}]}}).")
        if not _under(root, shared):
            raise ValidationError(
                f"The Ray compute {self.compute.name!r} cannot reach this workspace's storage: "
                f"its artifact folder {str(root)!r} is not under its shared paths "
                f"({', '.join(map(str, shared))}).",
                hint="Put the workspace on storage every node mounts at the same path, and list "
                "that path in settings.shared_paths.")
        for mount in launch.get("mounts") or []:
            if "://" not in str(mount) and not _under(mount, shared):
                raise ValidationError(
                    f"The input {str(mount)!r} is not on storage the Ray compute "
                    f"{self.compute.name!r} shares ({', '.join(map(str, shared))}).",
                    hint="Register the input as data (it is then copied into the job's folder), "
                    "or move it under a shared path.")

    def _environment(self, launch: dict[str, Any]) -> tuple[Any, list[str], list[str]]:
        """``(environment or None, pip requirements, notes)``; refuses what Ray cannot run."""
        ref = launch.get("environment")
        if not ref:
            return None, [], []
        env = self.workspace.environments.get(ref)
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
        from jupyter_mlws.environments.dockerfile import split_conda_deps

        python_dep, conda_pkgs = split_conda_deps(spec)
        if conda_pkgs:
            raise UnsupportedEnvironmentError(
                f"{who} needs the conda packages {', '.join(conda_pkgs)}, which the Ray compute "
                f"{self.compute.name!r} cannot install.",
                hint="Move them to the pip: section of the conda file, or use a docker compute "
                "target.")
        notes = []
        from jupyter_mlws.assets.environment import DEFAULT_BASE_IMAGE

        if spec.image and spec.image != DEFAULT_BASE_IMAGE:
            notes.append(f"the base image {spec.image} is not used on Ray: the nodes' Python "
                         "runs the job")
        if python_dep:
            notes.append(f"the conda file asks for {python_dep}; the nodes' Python is used")
        pip = [r for r in spec.pip_packages() if r.strip() and not r.strip().startswith("#")]
        return env, pip, notes

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
            from jupyter_mlws.compute.docker import _memory_bytes

            out["entrypoint_memory"] = _memory_bytes(str(spec["memory"]))
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

    def plan(self, launch: dict[str, Any]) -> Runtime | None:
        """At submission: storage, environment and the head's reachability (one HTTP GET)."""
        self._check_storage(launch)
        self._environment(launch)
        self._entrypoint_resources()
        self.client(timeout=PROBE_TIMEOUT_S).version()
        return None  # the runner submits: runtime env setup happens on the cluster

    def prepare(self, ctx: RunContext) -> Runtime:
        launch = ctx.launch
        self._check_storage(launch)
        client = self.client()
        version = client.version()
        nodes = [n for n in client.nodes() if (n.get("raylet") or {}).get("state") == "ALIVE"]
        ctx.prepare_log(f"[mlws] Ray cluster {client.address} (Ray {version.get('ray_version')}"
                        f"): {len(nodes)} node(s) alive")
        env, pip, notes = self._environment(launch)
        for note in notes:
            ctx.prepare_log(f"[mlws] note: {note}")
        resources = self._entrypoint_resources()
        self._check_resources(resources, nodes)

        env_vars = {str(k): str(v) for k, v in (launch.get("env") or {}).items()}
        runtime_env: dict[str, Any] = {"env_vars": env_vars}
        if pip:
            runtime_env["pip"] = pip
        shared = self.shared_paths()
        lib = launch.get("pythonpath")
        if lib and _under(lib, shared) and _under(launch["package_dir"], shared):
            env_vars["PYTHONPATH"] = lib
            package = f"PYTHONPATH={lib} (shared storage)"
        else:
            name, size = self._ship_package(client, Path(launch["package_dir"]))
            runtime_env["py_modules"] = [f"gcs://{name}"]
            package = f"py_modules gcs://{name}" + (f" (uploaded, {size // 1024} KB)"
                                                     if size else " (already on the cluster)")
        ctx.prepare_log("[mlws] runtime env: "
                        + (f"pip {' '.join(pip)}" if pip else "the nodes' Python, no pip packages")
                        + f"; {len(env_vars)} variables; jupyter_mlws via {package}")

        python = str(self.ray_settings.get("python") or "python")
        argv = [python if a == "{python}" else str(a) for a in launch["argv"]]
        entrypoint = f"cd {shlex.quote(str(launch['cwd']))} && exec {shlex.join(argv)}"
        metadata = {"mlws_job_id": ctx.job_id, "mlws_workspace": str(self.workspace.path),
                    "mlws_compute": self.compute.name, "mlws_kind": str(launch.get("kind")),
                    "job_name": ctx.job_id}
        payload = {"entrypoint": entrypoint, "submission_id": ctx.job_id,
                   "runtime_env": runtime_env, "metadata": metadata, **resources}
        return Runtime(python=f"{python} on Ray {client.address}",
                       env_hash=env.env_hash if env is not None else None,
                       details={"payload": payload, "address": client.address})

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
        timeout = ctx.launch.get("timeout")
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

    @staticmethod
    def _stop_pending(handle: RayJobHandle) -> None:
        """Ray delivers a stop request only once the job's supervisor has started: a job that
        waits for resources stays PENDING (until RAY_JOB_START_TIMEOUT_SECONDS fails it)."""
        handle.stop(grace=PENDING_STOP_WAIT_S - 5.0)
        if not handle.done:
            handle.abandon("the Ray job was still waiting to start; Ray stops it as soon as it "
                           "starts (or fails it after its start timeout)")

    def outcome(self, ctx: RunContext, code: int) -> tuple[str, str | None]:
        handle = self._handle
        if handle is not None and handle.abandoned:
            return "Canceled", f"canceled by request; {handle.abandoned}"
        if handle is not None and handle.lost:
            return "Failed", (f"lost the Ray job {ctx.job_id} at {handle.client.address}: "
                              f"{handle.lost}")
        if handle is not None and handle.status == "STOPPED":
            if ctx.cancel_requested():
                return "Canceled", "canceled by request (the Ray job was stopped)"
            return "Canceled", "the Ray job was stopped outside the workspace"
        status, message = super().outcome(ctx, code)
        if status == "Failed" and handle is not None and not ctx.paths.result.exists():
            ray_message = str(handle.info.get("message") or "").strip()
            if handle.info.get("driver_exit_code") is None and ray_message:
                message = f"Ray: {ray_message.splitlines()[0][:500]}"
            elif ctx.launch.get("kind") == "notebook":
                message = (f"the notebook runner exited with code {code} on the Ray node "
                           f"{handle.node_ip or '?'} before reporting (does the nodes' Python "
                           "have papermill and ipykernel? add them to the environment's pip "
                           f"packages); see `mlws job logs {ctx.job_id}`")
        return status, message


def token_from(settings: dict[str, Any], compute_name: str = "") -> str | None:
    """The Ray auth token from the environment variable named by ``settings.token_env``."""
    var = settings.get("token_env")
    if not var:
        return None
    value = os.environ.get(str(var))
    if not value:
        raise ValidationError(
            f"The Ray compute {compute_name!r} reads its auth token from the environment "
            f"variable {var}, which is not set here.",
            hint=f"Set {var} in the environment of the process that submits jobs (the shell, "
            "or the Jupyter server).")
    return value.strip()


# --- cluster information for `mlws compute show` ------------------------------------------------------


def cluster_info(address: str, token: str | None = None, *,
                 timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """The cluster's version, nodes, resources and health; never raises for an unreachable head."""
    try:
        client = RayJobsClient(address, token=token, timeout=timeout)
    except MlwsError as exc:
        return {"address": address, "health": "invalid address", "error": str(exc)}
    info: dict[str, Any] = {"address": client.address}
    try:
        info["ray_version"] = client.version().get("ray_version")
        raw_nodes = client.nodes()
    except MlwsError as exc:
        info.update(health="unreachable" if isinstance(exc, RayHeadUnreachableError)
                    else "refused", error=str(exc), nodes=[])
        return info
    nodes = []
    totals: dict[str, float] = {}
    for n in raw_nodes:
        raylet = n.get("raylet") or {}
        resources = {k: v for k, v in (raylet.get("resourcesTotal") or {}).items()
                     if not k.startswith("node:")}
        state = raylet.get("state") or "UNKNOWN"
        nodes.append({"ip": n.get("ip"), "hostname": n.get("hostname"), "state": state,
                      "head": bool(raylet.get("isHeadNode")), "node_id": raylet.get("nodeId"),
                      "resources": resources})
        if state == "ALIVE":
            for k, v in resources.items():
                totals[k] = totals.get(k, 0.0) + float(v)
    usage: dict[str, Any] = {}
    with contextlib.suppress(MlwsError):
        report = client.cluster_status().get("clusterStatus") or {}
        for key, pair in ((report.get("loadMetricsReport") or {}).get("usage") or {}).items():
            if not key.startswith("node:") and isinstance(pair, list) and len(pair) == 2:
                usage[key] = {"used": pair[0], "total": pair[1]}
    alive = sum(1 for n in nodes if n["state"] == "ALIVE")
    info.update(health="ok" if alive and alive == len(nodes) else
                ("degraded" if alive else "no live nodes"),
                alive_nodes=alive, nodes=nodes, resources=totals, usage=usage)
    return info


def describe_compute(compute: Any) -> dict[str, Any]:
    """Flat fields for ``mlws compute show`` of a Ray compute (the token is never shown)."""
    address = compute.spec.get("address") or (compute.spec.get("settings") or {}).get("address")
    if not address:
        return {"cluster": "no address"}
    try:
        token = token_from(dict(compute.spec.get("settings") or {}), compute.name)
    except MlwsError as exc:
        return {"cluster": str(exc)}
    info = cluster_info(str(address), token)
    if info.get("health") in ("unreachable", "refused", "invalid address"):
        return {"cluster": f"{info['health']}: {info.get('error')}"}

    def fmt(resources: dict[str, Any]) -> str:
        shown = {k: v for k, v in resources.items() if k not in ("memory", "objectStoreMemory")}
        text = ", ".join(f"{k}={float(v):g}" for k, v in sorted(shown.items()))
        if resources.get("memory"):
            text += f", memory={float(resources['memory']) / 2**30:.1f}GiB"
        return text

    out: dict[str, Any] = {
        "cluster": f"{info['health']}: Ray {info.get('ray_version')} at {info['address']}, "
                   f"{info['alive_nodes']} of {len(info['nodes'])} node(s) alive",
        "cluster_resources": fmt(info["resources"]),
    }
    for i, n in enumerate(info["nodes"]):
        out[f"node_{i}"] = (f"{n['ip']} {'head' if n['head'] else 'worker'} {n['state']}: "
                            f"{fmt(n['resources'])}")
    used = {k: v for k, v in info.get("usage", {}).items()
            if k not in ("memory", "objectStoreMemory") and v.get("used")}
    if used:
        out["cluster_in_use"] = ", ".join(f"{k}={v['used']:g}/{v['total']:g}"
                                          for k, v in sorted(used.items()))
    return out
