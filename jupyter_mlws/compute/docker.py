"""``docker``: the job runs in a container from its environment's cached image.

Paths are mounted at the same place inside the container as on the host, so a command and its
inputs/outputs read the same everywhere. Inputs are mounted read-only, the job's folder (with its
outputs) read-write, and the ``jupyter_mlws`` package read-only at ``/opt/mlws/lib`` so that
``from jupyter_mlws import run`` works without installing anything in the image.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.compute.base import STOP_GRACE_S, ComputeTarget, RunContext, Runtime
from jupyter_mlws.compute.units import parse_memory
from jupyter_mlws.errors import DockerUnavailableError, MlwsError

if TYPE_CHECKING:
    from jupyter_mlws.jobs.launch import Launch

CONTAINER_LIB = "/opt/mlws/lib"
DEFAULT_ENVIRONMENT = "MLWS-python-3.11-minimal"


class DockerHandle:
    def __init__(self, container: Any, log_path: Path) -> None:
        self.container = container
        self.started_at = time.time()
        self._log_path = log_path
        self._exit: int | None = None
        self._pump = threading.Thread(target=self._copy_logs, daemon=True)
        self._pump.start()

    def _copy_logs(self) -> None:
        with open(self._log_path, "ab", buffering=0) as f:
            try:
                for chunk in self.container.logs(stream=True, follow=True):
                    f.write(chunk)
            except Exception as exc:  # the engine went away: say so in the log
                f.write(f"\n[mlws] lost the container's log stream: {exc}\n".encode())

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
            self._pump.join(timeout=5)
            self._exit = code
        return self._exit

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        with contextlib.suppress(Exception):
            self.container.stop(timeout=int(grace))

    def close(self) -> None:
        self._pump.join(timeout=5)
        with contextlib.suppress(Exception):
            self.container.remove(force=True)


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
        from jupyter_mlws.docker_engine import docker_client

        client = docker_client()
        launch = ctx.launch
        volumes: dict[str, dict[str, str]] = {
            str(ctx.paths.root): {"bind": str(ctx.paths.root), "mode": "rw"},
            launch.package_dir: {"bind": f"{CONTAINER_LIB}/jupyter_mlws", "mode": "ro"},
        }
        for mount in launch.mounts:
            volumes[mount] = {"bind": mount, "mode": "ro"}
        env = {**launch.env, "PYTHONPATH": CONTAINER_LIB, "PYTHONUNBUFFERED": "1"}
        argv = ["python3" if a == "{python}" else a for a in launch.argv]
        kwargs: dict[str, Any] = {}
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
                volumes=volumes, labels={"org.mlws.job": ctx.job_id}, **kwargs,
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
