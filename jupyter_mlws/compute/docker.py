"""``docker``: the job runs in a container from its environment's cached image.

Paths are mounted at the same place inside the container as on the host, so a command and its
inputs/outputs read the same everywhere. Inputs are mounted read-only, the job's folder
read-only (its ``launch.json`` and logs are the host's) with the folders the job writes (code,
outputs, run, notebook) read-write on top, and the ``jupyter_mlws`` package read-only at
``/opt/mlws/lib`` so that ``from jupyter_mlws import run`` works without installing anything in
the image. The job runs as the invoking user, never as root (``nobody`` when the host user is
root), without capabilities, with ``HOME=/tmp`` on a tmpfs.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from jupyter_mlws.compute.base import STOP_GRACE_S, ComputeTarget, RunContext, Runtime
from jupyter_mlws.compute.units import parse_memory
from jupyter_mlws.errors import DockerUnavailableError, MlwsError
from jupyter_mlws.jobs.mlflow_store import add_tracking_env, store_folder
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.safe_files import job_file_size, open_log_for_append

if TYPE_CHECKING:
    from jupyter_mlws.jobs.launch import Launch

CONTAINER_LIB = "/opt/mlws/lib"
#: The job's run folder again, where MLflow's file store accepts it (see ``jobs.mlflow_store``).
CONTAINER_RUN = "/opt/mlws/run"
DEFAULT_ENVIRONMENT = "MLWS-python-3.11-minimal"
#: The label that names a container's job (the reaper and cancel find leftovers by it).
LABEL = "org.mlws.job"
#: Who a job runs as when the host user is root (``nobody``): never root in the container.
UNPRIVILEGED = 65534
#: How long a log pump may take to catch up once its container has ended.
PUMP_WAIT_S = 10.0


class DockerHandle:
    """A started container; its output is copied to the job's log as it comes.

    When the container ends, the log pump is waited for and whatever it missed (a stream cut
    short, a container too fast for it) is taken from the stopped container before it is
    removed, so no output is lost.
    """

    def __init__(self, container: Any, log_path: Path) -> None:
        self.container = container
        self.started_at = time.time()
        self._log_path = log_path
        self._exit: int | None = None
        self._lock = threading.Lock()
        self._written = 0
        self._sealed = False
        self._pump_done = False  # the stream ended by itself, with everything
        self._log = open_log_for_append(log_path)
        self._pump = threading.Thread(target=self._copy_logs, daemon=True)
        self._pump.start()

    def _append(self, data: bytes) -> None:
        with self._lock:
            if not self._sealed:
                self._log.write(data)
                self._written += len(data)

    def _copy_logs(self) -> None:
        with contextlib.suppress(Exception):  # a cut stream is completed by _drain
            for chunk in self.container.logs(stream=True, follow=True):
                self._append(chunk)
            self._pump_done = True

    def _drain(self) -> None:
        """After the container ended: wait for the pump, then take whatever it did not get
        (a stream cut short or too slow) from the stopped container, before it is removed."""
        self._pump.join(timeout=PUMP_WAIT_S)
        with self._lock:
            if not self._sealed:
                try:
                    self._written += copy_log_tail(self.container, self._log, self._written)
                except Exception as exc:
                    if not self._pump_done:  # the engine went away: say so in the log
                        self._log.write(f"\n[mlws] lost the container's log stream: {exc}\n"
                                        .encode())
            self._sealed = True

    def poll(self) -> int | None:
        if self._exit is not None:
            return self._exit
        try:
            self.container.reload()
        except Exception:
            return None
        if self.container.status in ("exited", "dead"):
            state = self.container.attrs.get("State", {})
            code = int(state.get("ExitCode", 1))
            if state.get("OOMKilled"):
                code = 137
            self._drain()
            with contextlib.suppress(Exception):  # gone before the job is said to have ended
                self.container.remove(force=True)
            self._exit = code
        return self._exit

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        with contextlib.suppress(Exception):
            self.container.stop(timeout=int(grace))

    def close(self) -> None:
        if self._exit is None:
            with contextlib.suppress(Exception):
                self.container.stop(timeout=0)
            self._drain()
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        with self._lock:
            self._sealed = True
            self._log.close()


def container_user() -> tuple[int, int]:
    """Who a job runs as in its container: the invoking user, or ``nobody`` instead of root."""
    uid, gid = os.getuid(), os.getgid()
    return (UNPRIVILEGED, UNPRIVILEGED) if uid == 0 else (uid, gid)


def _hand_over(paths: JobPaths, uid: int) -> None:
    """Make the folders the job may write writable by ``uid`` (when the host is root), and the
    inputs copied into the job folder readable by it."""
    if os.getuid() != 0 or uid == 0:
        return
    for top in paths.job_writable():
        top.mkdir(parents=True, exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.lchown(name, uid, uid)
    for dirpath, _dirnames, filenames in os.walk(paths.inputs, followlinks=False):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, os.stat(full).st_mode | 0o444)


def job_volumes(paths: JobPaths, package_dir: str, mounts: list[str]) -> dict[str, dict[str, str]]:
    """The job's folder read-only (launch.json, logs), the folders it may write read-write on
    top, its notebook and parameters read-only again, the package and inputs read-only."""
    volumes = {str(paths.root): {"bind": str(paths.root), "mode": "ro"}}
    for folder in paths.job_writable():
        volumes[str(folder)] = {"bind": str(folder), "mode": "rw"}
    for fixed in (paths.notebook_in, paths.params_file):
        if fixed.is_file():
            volumes[str(fixed)] = {"bind": str(fixed), "mode": "ro"}
    volumes[package_dir] = {"bind": f"{CONTAINER_LIB}/jupyter_mlws", "mode": "ro"}
    for mount in mounts:
        volumes.setdefault(mount, {"bind": mount, "mode": "ro"})
    return volumes


def stop_job_containers(job_id: str, log_path: Path | None = None) -> int:
    """Stop and remove the containers labelled as ``job_id``'s (left by a runner that died).

    What they printed since the runner's log pump stopped is appended to ``log_path``. Returns
    how many were found; a no-op (0) when Docker is not installed or its engine is down.
    """
    try:
        from jupyter_mlws.docker_engine import docker_client

        client = docker_client()
        found = client.containers.list(all=True, filters={"label": f"{LABEL}={job_id}"})
    except Exception:
        return 0
    for container in found:
        with contextlib.suppress(Exception):
            container.stop(timeout=1)
        if log_path is not None:
            with contextlib.suppress(Exception), open_log_for_append(log_path) as log:
                copy_log_tail(container, log, job_file_size(log_path))
        with contextlib.suppress(Exception):
            container.remove(force=True)
    return len(found)


def copy_log_tail(container: Any, log: BinaryIO, skip: int) -> int:
    """Append what ``container`` printed after its first ``skip`` bytes to ``log``; returns how
    many bytes were appended (streamed: a long log is not held in memory)."""
    added = 0
    for chunk in container.logs(stream=True, follow=False):
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        log.write(chunk[skip:])
        added += len(chunk) - skip
        skip = 0
    return added


class DockerTarget(ComputeTarget):
    kind = "docker"

    def _environment(self, launch: Launch) -> Any:
        return self.services.environment(launch.environment or DEFAULT_ENVIRONMENT)

    def plan(self, launch: Launch) -> Runtime | None:
        return None  # the runner looks the image up (one inspect call) before it starts

    def prepare(self, ctx: RunContext) -> Runtime:
        env = self._environment(ctx.launch)
        ctx.prepare_log(f"[mlws] preparing the image of {env.ref} ({env.image})")
        result = self.services.build_environment(env, "docker", log=ctx.prepare_log)
        return Runtime(image=result.image, env_hash=env.env_hash,
                       details={"image_id": result.image_id})

    def start(self, ctx: RunContext, runtime: Runtime) -> DockerHandle:
        import docker.types

        from jupyter_mlws.docker_engine import docker_client

        client = docker_client()
        launch = ctx.launch
        uid, gid = container_user()
        try:
            _hand_over(ctx.paths, uid)
        except OSError as exc:
            raise MlwsError(
                f"The job's folders could not be made writable for the container's user {uid} "
                f"({exc}).", hint="Keep the workspace on a local filesystem that allows chown.",
            ) from None
        volumes = job_volumes(ctx.paths, launch.package_dir, list(launch.mounts))
        env = {"HOME": "/tmp", **launch.env, "PYTHONPATH": CONTAINER_LIB,
               "PYTHONUNBUFFERED": "1"}
        add_tracking_env(env, launch.env, store=str(store_folder(CONTAINER_RUN)))
        argv = ["python3" if a == "{python}" else a for a in launch.argv]
        kwargs: dict[str, Any] = {
            "user": f"{uid}:{gid}", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "tmpfs": {"/tmp": "rw,exec,nosuid,nodev,mode=1777"},
            "mounts": [docker.types.Mount(CONTAINER_RUN, str(ctx.paths.run), type="bind")],
        }
        settings = self.settings
        if settings.get("cpus"):
            kwargs["nano_cpus"] = int(float(settings["cpus"]) * 1e9)
        if settings.get("memory"):
            kwargs["mem_limit"] = parse_memory(str(settings["memory"]))
        gpus = settings.get("gpus")
        if gpus:
            import docker

            count = -1 if str(gpus) == "all" else int(gpus)
            kwargs["device_requests"] = [docker.types.DeviceRequest(count=count,
                                                                    capabilities=[["gpu"]])]
        try:
            container = client.containers.run(
                runtime.image, argv, detach=True, working_dir=launch.cwd, environment=env,
                volumes=volumes, labels={LABEL: ctx.job_id}, **kwargs,
            )
        except Exception as exc:
            if "could not select device driver" in str(exc):
                raise MlwsError(
                    f"The compute {self.compute.name!r} asks for GPUs, but the Docker engine has "
                    "no GPU runtime.", hint="Install the NVIDIA container toolkit, or remove gpus.",
                ) from None
            if "Cannot connect" in str(exc) or "Connection" in type(exc).__name__:
                raise DockerUnavailableError() from None
            raise MlwsError(f"The container could not start: {exc}") from None
        return DockerHandle(container, ctx.paths.job_log)
