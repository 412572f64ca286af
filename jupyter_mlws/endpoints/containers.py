"""Replicas as Docker containers of the environment's cached image (an endpoint on ``docker``).

Each container runs the same stdlib replica script as a process replica, with:

- the model folder read-only at ``/var/azureml-models/<name>/<version>`` (``AZUREML_MODEL_DIR``),
  the code snapshot read-only at ``/var/azureml-app``, the replica script read-only, and only the
  replica's run folder (its port and error files) writable;
- the invoking user, never root (``nobody`` when the host user is root), no capabilities,
  ``no-new-privileges``, ``HOME`` on a tmpfs ``/tmp``;
- its scoring port published on ``127.0.0.1`` only, at a port the engine picks; the router
  forwards there.

Containers carry the labels :data:`ENDPOINT_LABEL` (the endpoint's folder, unique across
workspaces) and :data:`DEPLOYMENT_LABEL`, by which a new supervisor and ``delete`` remove what a
killed supervisor left.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from jupyter_mlws.compute.docker import DockerHandle, container_user
from jupyter_mlws.endpoints.paths import EndpointPaths, write_json

ENDPOINT_LABEL = "org.mlws.endpoint"
DEPLOYMENT_LABEL = "org.mlws.deployment"
CONTAINER_PORT = 5001
APP_DIR = "/var/azureml-app"
MODELS_DIR = "/var/azureml-models"
RUN_DIR = "/var/mlws/run"
REPLICA_PATH = "/opt/mlws/replica.py"
#: How often a container's state is asked of the engine (each ask is an API call).
POLL_EVERY_S = 0.5


class ContainerHandle(DockerHandle):
    """A replica's container: its output goes to the deployment log; ``host_port`` is where
    its scoring port is published on 127.0.0.1."""

    def __init__(self, container: Any, log_path: Path, host_port: int) -> None:
        super().__init__(container, log_path)
        self.host_port = host_port
        self._next_poll = 0.0

    @property
    def pid(self) -> None:
        return None  # the process is the engine's, not this machine's to signal

    @property
    def container_id(self) -> str:
        return str(self.container.id)[:12]

    def poll(self) -> int | None:
        now = time.monotonic()
        if self._exit is None and now < self._next_poll:
            return None
        self._next_poll = now + POLL_EVERY_S
        return super().poll()

    def stop(self, grace: float = 2.0) -> None:
        super().stop(grace)
        self.close()


def model_mount(cfg: dict[str, Any], paths: EndpointPaths) -> str:
    """Where the model folder is seen inside the container (Azure's layout kept)."""
    model_dir = Path(str(cfg["model_dir"]))
    root = paths.model_root(str(cfg["name"]), int(cfg.get("generation") or 1))
    try:
        rel = model_dir.relative_to(root)
    except ValueError:
        rel = Path(model_dir.name)
    return f"{MODELS_DIR}/{rel}".rstrip("/.") if str(rel) != "." else MODELS_DIR


def _readable(top: Path) -> None:
    """Let the container's user (``nobody`` when the host is root) read ``top``."""
    for dirpath, _dirs, files in os.walk(top, followlinks=False):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o555)
        for name in files:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, os.stat(full).st_mode | 0o444)


def prepare(cfg: dict[str, Any], paths: EndpointPaths, run_dir: Path) -> Path:
    """Write the replicas' config with the container's paths; hand the run folder over."""
    uid, gid = container_user()
    config = run_dir / "replica-docker.json"
    write_json(config, {
        "deployment": cfg["name"], "run_dir": RUN_DIR, "code_dir": APP_DIR,
        "scoring_script": cfg["scoring_script"], "max_concurrent": cfg.get("max_concurrent", 1),
        "bind_host": "0.0.0.0", "bind_port": CONTAINER_PORT})
    os.chmod(config, 0o644)
    if os.getuid() == 0 and uid != 0:
        os.chown(run_dir, uid, gid)
        for top in (Path(str(cfg["code_dir"])), Path(str(cfg["model_dir"]))):
            _readable(top)
    return config


def start(cfg: dict[str, Any], paths: EndpointPaths, run_dir: Path, index: int,
          env: dict[str, str], script: Path) -> ContainerHandle:
    """Start replica ``index`` of the deployment ``cfg`` in a container of its image."""
    from jupyter_mlws.docker_engine import docker_client, engine_calls

    uid, gid = container_user()
    volumes = {
        str(cfg["code_dir"]): {"bind": APP_DIR, "mode": "ro"},
        str(cfg["model_dir"]): {"bind": model_mount(cfg, paths), "mode": "ro"},
        str(script): {"bind": REPLICA_PATH, "mode": "ro"},
        str(run_dir): {"bind": RUN_DIR, "mode": "rw"},
    }
    environment = {**env, "AZUREML_MODEL_DIR": model_mount(cfg, paths), "HOME": "/tmp",
                   "PYTHONUNBUFFERED": "1", "AML_APP_ROOT": APP_DIR}
    log_path = paths.log(str(cfg["name"]))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with engine_calls():
        client = docker_client()
        container = client.containers.run(
            str(cfg["image"]), ["python3", REPLICA_PATH, f"{RUN_DIR}/replica-docker.json",
                                str(index)],
            detach=True, working_dir=APP_DIR, environment=environment, volumes=volumes,
            user=f"{uid}:{gid}", cap_drop=["ALL"], security_opt=["no-new-privileges"],
            tmpfs={"/tmp": "rw,exec,nosuid,nodev,mode=1777"},
            ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", None)},
            labels={ENDPOINT_LABEL: str(paths.root), DEPLOYMENT_LABEL: str(cfg["name"])})
        try:
            container.reload()
            bound = container.attrs["NetworkSettings"]["Ports"][f"{CONTAINER_PORT}/tcp"]
            return ContainerHandle(container, log_path, int(bound[0]["HostPort"]))
        except BaseException:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise


def remove_containers(root: Path, deployment: str | None = None) -> int:
    """Remove the containers of the endpoint at ``root`` (of one deployment); how many were
    found. A no-op (0) when Docker is not installed or its engine is down."""
    labels = [f"{ENDPOINT_LABEL}={root}"]
    if deployment:
        labels.append(f"{DEPLOYMENT_LABEL}={deployment}")
    try:
        from jupyter_mlws.docker_engine import docker_client

        found = docker_client().containers.list(all=True, filters={"label": labels})
    except Exception:
        return 0
    for container in found:
        with contextlib.suppress(Exception):
            container.remove(force=True)
    return len(found)
