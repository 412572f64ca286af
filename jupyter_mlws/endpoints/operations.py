"""``ws.endpoints``: online endpoints and their deployments, served on this machine.

The store keeps what was asked (specs, port, encrypted keys, traffic); the endpoint's folder
keeps ``config.json`` for its supervisor and the supervisor's ``status.json``. Every read of an
endpoint first makes sure its supervisor lives, and starts another when it died (a crash, a kill,
a machine restart), as the job reaper does for jobs.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from jupyter_mlws.crypto import SecretBox
from jupyter_mlws.endpoints.model import CREATING, FAILED, SUCCEEDED, OnlineEndpoint
from jupyter_mlws.endpoints.paths import EndpointPaths, read_json, write_json
from jupyter_mlws.endpoints.replicas import log_tail
from jupyter_mlws.endpoints.resolve import DOCKER, runtime_of
from jupyter_mlws.endpoints.router import DEPLOYMENT_HEADER
from jupyter_mlws.endpoints.specs import (
    DeploymentSpec,
    EndpointSpec,
    check_mirror,
    check_traffic,
    parse_traffic,
)
from jupyter_mlws.errors import (
    ConflictError,
    DeploymentFailedError,
    MlwsError,
    SpecError,
    ValidationError,
)
from jupyter_mlws.jobs.runner import is_locked

if TYPE_CHECKING:
    from jupyter_mlws.store.endpoints_sql import EndpointStoreMixin

SUPERVISOR_START_S = 30.0
STOP_WAIT_S = 15.0
POLL_S = 0.05


@dataclass
class InvokeResult:
    """What an endpoint answered: HTTP status, body, and the deployment that answered."""

    status: int
    body: str
    deployment: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port


def _header_safe(value: str) -> bool:
    """Whether ``value`` can be sent as an HTTP header value as it is."""
    return value.isascii() and value.isprintable()


def _load_spec(model: type[Any], path: str | Path, schemas: tuple[str, ...]) -> tuple[Any, Path]:
    from jupyter_mlws.assets.yaml_io import load_yaml, validate_spec

    p = Path(path)
    data, index = load_yaml(p)
    if isinstance(data, dict) and isinstance(data.get("$schema"), str):
        schema = data["$schema"]
        if "/" in schema and not any(s in schema for s in schemas):
            raise SpecError(f"this file's $schema is not one of {', '.join(schemas)}",
                            file=str(p), line=index.get(("$schema",)))
    return validate_spec(model, data, source=str(p), index=index), p.parent.resolve()


def _is_supervisor(pid: int, paths: EndpointPaths) -> bool:
    """Whether ``pid`` is still this endpoint's supervisor (its command line says so; a
    zombie's is empty, a recycled pid's another)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"jupyter_mlws.endpoints.supervisor" in argv and str(paths.root).encode() in argv


class EndpointOperations:
    """Create, show, list, delete and invoke endpoints; create, list, delete deployments."""

    def __init__(self, workspace: Any) -> None:
        self._ws = workspace
        self._store = cast("EndpointStoreMixin", workspace.store)

    def paths(self, name: str) -> EndpointPaths:
        return EndpointPaths(self._ws.path / "endpoints" / name)

    # --- endpoints -----------------------------------------------------------------------------

    def create(self, spec: EndpointSpec | dict[str, Any] | str | Path) -> dict[str, Any]:
        """Create an endpoint (a spec, a mapping, or a YAML file); its supervisor starts."""
        if isinstance(spec, (str, Path)):
            spec, _base = _load_spec(EndpointSpec, spec, ("OnlineEndpoint",))
        elif isinstance(spec, dict):
            from jupyter_mlws.assets.yaml_io import validate_spec

            spec = validate_spec(EndpointSpec, spec)
        assert isinstance(spec, EndpointSpec)
        if spec.traffic:
            check_traffic(spec.traffic, set(), spec.name)
        if spec.mirror_traffic:
            check_mirror(spec.mirror_traffic, {}, set(), spec.name)
        runtime_of(self._ws, spec.compute)  # an unknown compute is refused before anything
        taken = {e.port for e in self._store.list_endpoints()}
        keys = {"primary": secrets.token_urlsafe(32), "secondary": secrets.token_urlsafe(32)}
        stored = SecretBox.load(create=True).encrypt(keys)
        self._store.create_endpoint(spec.name, spec=spec.model_dump(by_alias=True,
                                                                     exclude_none=True),
                                    port=_free_port(taken), keys=stored, traffic={})
        self.ensure_running(spec.name)
        return self.show(spec.name)

    def _endpoint(self, name: str) -> OnlineEndpoint:
        return self._store.get_endpoint(name)

    def show(self, name: str) -> dict[str, Any]:
        """The endpoint as ``mlws online-endpoint show`` prints it (never its keys)."""
        ep = self._endpoint(name)
        restarted = self.ensure_running(name)
        ep = self._endpoint(name)
        status = read_json(self.paths(name).status) or {}
        spec = EndpointSpec.model_validate(ep.spec)
        return {
            "name": ep.name, "auth_mode": spec.auth_mode, "description": spec.description,
            "tags": spec.tags, "provisioning_state": SUCCEEDED,
            "scoring_uri": f"http://127.0.0.1:{ep.port}/score",
            "swagger_uri": f"http://127.0.0.1:{ep.port}/swagger.json", "port": ep.port,
            "compute": spec.compute or "local", "runtime": self._runtime(spec.compute),
            "traffic": ep.traffic, "mirror_traffic": spec.mirror_traffic,
            "supervisor_pid": status.get("pid"),
            "supervisor_restarted": restarted,
            "deployments": {n: d.get("state") for n, d in
                            (status.get("deployments") or {}).items()},
            "notes": spec.notes(), "created_at": ep.created_at,
        }

    def _runtime(self, compute: str | None) -> str:
        """Where the endpoint's replicas run (``unknown`` when its compute was deleted)."""
        try:
            return runtime_of(self._ws, compute)
        except MlwsError:
            return "unknown"

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every endpoint (supervisors that died are started again)."""
        return [self.show(ep.name) for ep in self._store.list_endpoints()]

    def update_traffic(self, name: str, traffic: str | dict[str, Any]) -> dict[str, Any]:
        """Set the traffic split (``"blue=90 green=10"``); nothing changes on a bad split."""
        split = parse_traffic(traffic)
        deployments = {d.name for d in self._store.list_deployments(name)}
        check_traffic(split, deployments, name)
        full = {d: split.get(d, 0) for d in sorted(deployments)}
        spec = EndpointSpec.model_validate(self._endpoint(name).spec)
        check_mirror(spec.mirror_traffic, full, deployments, name)
        self._store.update_endpoint(name, traffic=full)
        self._write_config(name)
        return self.show(name)

    def update_mirror_traffic(self, name: str, mirror: str | dict[str, Any]) -> dict[str, Any]:
        """Send a copy of a share of requests to deployments (``"green=10"``; answers are
        discarded; ``""`` stops mirroring). Nothing changes on a bad share."""
        share = parse_traffic(mirror) if mirror else {}
        deployments = {d.name for d in self._store.list_deployments(name)}
        ep = self._endpoint(name)
        check_mirror(share, ep.traffic, deployments, name)
        spec = {**ep.spec, "mirror_traffic": {k: v for k, v in share.items() if v > 0}}
        self._store.update_endpoint(name, spec=spec)
        self._write_config(name)
        return self.show(name)

    def update(self, spec: EndpointSpec | dict[str, Any] | str | Path) -> dict[str, Any]:
        """``online-endpoint update -f``: description, tags, traffic and mirror traffic of an
        existing endpoint (its name, keys, port and compute stay)."""
        if isinstance(spec, (str, Path)):
            spec, _base = _load_spec(EndpointSpec, spec, ("OnlineEndpoint",))
        elif isinstance(spec, dict):
            from jupyter_mlws.assets.yaml_io import validate_spec

            spec = validate_spec(EndpointSpec, spec)
        assert isinstance(spec, EndpointSpec)
        ep = self._endpoint(spec.name)
        old = EndpointSpec.model_validate(ep.spec)
        if (spec.compute or "local") != (old.compute or "local"):
            raise ValidationError(
                f"The compute of endpoint {spec.name!r} cannot change ({old.compute or 'local'}"
                f" -> {spec.compute or 'local'}).",
                hint="Create another endpoint on the other compute. Nothing was changed.")
        deployments = {d.name for d in self._store.list_deployments(spec.name)}
        traffic = ep.traffic
        if spec.traffic:
            check_traffic(spec.traffic, deployments, spec.name)
            traffic = {d: spec.traffic.get(d, 0) for d in sorted(deployments)}
        check_mirror(spec.mirror_traffic, traffic, deployments, spec.name)
        self._store.update_endpoint(spec.name, traffic=traffic,
                                    spec=spec.model_dump(by_alias=True, exclude_none=True))
        self._write_config(spec.name)
        return self.show(spec.name)

    def start(self, name: str | None = None) -> builtins.list[dict[str, Any]]:
        """Start the supervisor of ``name`` (of every endpoint when ``None``) when it is not
        running, e.g. after a machine restart; the endpoints as ``show`` gives them."""
        names = [name] if name else [e.name for e in self._store.list_endpoints()]
        return [self.show(n) for n in names]

    def deployments_using(self, *, model: str | None = None, environment: str | None = None,
                          env_hash: str | None = None) -> builtins.list[dict[str, Any]]:
        """Lineage: the deployments serving ``model`` (``name`` or ``name:version``), or built
        from ``environment`` (``name`` or ``name:version``) or the environment ``env_hash``."""
        from jupyter_mlws.endpoints.lineage import deployments_using

        return deployments_using(self._store, model=model, environment=environment,
                                 env_hash=env_hash)

    def credentials(self, name: str) -> dict[str, str]:
        """The endpoint's keys. Only ``get-credentials`` prints them."""
        ep = self._endpoint(name)
        keys = SecretBox.load(create=False).decrypt(ep.keys, what=f"online endpoint {name}")
        return {"primaryKey": keys["primary"], "secondaryKey": keys["secondary"]}

    def regenerate_keys(self, name: str, key_type: str = "primary") -> None:
        """Replace the primary or secondary key; the other one keeps working."""
        if key_type not in ("primary", "secondary"):
            raise ValidationError(f"Unknown key type {key_type!r}.",
                                  hint="Use primary or secondary.")
        keys = {"primary": "", "secondary": ""}
        current = self.credentials(name)
        keys.update(primary=current["primaryKey"], secondary=current["secondaryKey"])
        keys[key_type] = secrets.token_urlsafe(32)
        self._store.update_endpoint(name, keys=SecretBox.load(create=True).encrypt(keys))
        self._write_config(name)

    def delete(self, name: str) -> None:
        """Stop the supervisor and every replica, and forget the endpoint."""
        self._endpoint(name)
        paths = self.paths(name)
        docker = any(d.resolved.get("runtime") == DOCKER
                     for d in self._store.list_deployments(name))
        self._stop_supervisor(paths)
        if docker:
            from jupyter_mlws.endpoints.containers import remove_containers

            remove_containers(paths.root)  # those a killed supervisor left
        self._store.delete_endpoint(name)
        shutil.rmtree(paths.root, ignore_errors=True)

    # --- the supervisor -----------------------------------------------------------------------

    def _config(self, name: str) -> dict[str, Any]:
        ep = self._endpoint(name)
        deployments = {d.name: {**d.resolved, "name": d.name, "generation": d.generation}
                       for d in self._store.list_deployments(name)}
        return {"endpoint": name, "port": ep.port, "keys": ep.keys, "traffic": ep.traffic,
                "mirror_traffic": ep.spec.get("mirror_traffic") or {},
                "deployments": deployments}

    def _write_config(self, name: str) -> None:
        """Write what the supervisor should do, and wait until a live supervisor applied it."""
        paths = self.paths(name)
        write_json(paths.config, self._config(name))
        digest = hashlib.sha256(paths.config.read_bytes()).hexdigest()
        deadline = time.monotonic() + STOP_WAIT_S
        while is_locked(paths.lock) and time.monotonic() < deadline:
            if (read_json(paths.status) or {}).get("config") == digest:
                return
            time.sleep(POLL_S / 5)

    def ensure_running(self, name: str) -> bool:
        """Start the endpoint's supervisor when none lives; ``True`` when one was started."""
        paths = self.paths(name)
        if is_locked(paths.lock):
            self._record_port(name)
            return False
        self._write_config(name)
        stale = (read_json(paths.status) or {}).get("pid")
        with open(paths.supervisor_log, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_mlws.endpoints.supervisor", str(paths.root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True)
        deadline = time.monotonic() + SUPERVISOR_START_S
        while time.monotonic() < deadline:
            pid = (read_json(paths.status) or {}).get("pid")
            if pid == proc.pid:
                self._record_port(name)
                return True
            if proc.poll() is not None:
                if not is_locked(paths.lock):
                    raise MlwsError(
                        f"The supervisor of endpoint {name!r} stopped at start:\n"
                        + log_tail(paths.supervisor_log, 15),
                        hint="Fix what the log says, then `mlws online-endpoint show "
                        f"-n {name}` starts it again.")
                if pid not in (None, stale):  # another caller's supervisor won the race
                    self._record_port(name)
                    return False
            time.sleep(POLL_S)
        raise MlwsError(f"The supervisor of endpoint {name!r} did not start within "
                        f"{SUPERVISOR_START_S:g} s; its log: {paths.supervisor_log}")

    def _record_port(self, name: str) -> None:
        """When the recorded port was taken, the supervisor took the next free one: record it."""
        status = read_json(self.paths(name).status) or {}
        port = status.get("port")
        if isinstance(port, int) and port != self._endpoint(name).port:
            self._store.update_endpoint(name, port=port)

    def _stop_supervisor(self, paths: EndpointPaths) -> None:
        status = read_json(paths.status) or {}
        paths.config.unlink(missing_ok=True)  # a supervisor that sees no config stops
        pid = status.get("pid")
        if is_locked(paths.lock) and isinstance(pid, int):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while is_locked(paths.lock) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if is_locked(paths.lock) and isinstance(pid, int):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # the lock is freed just before the process ends: wait for the end itself
        while (isinstance(pid, int) and _is_supervisor(pid, paths)
               and time.monotonic() < deadline):
            time.sleep(POLL_S)
        for dep in (status.get("deployments") or {}).values():  # replicas left by a kill
            for r in [*(dep.get("replicas") or []), *(dep.get("serving_replicas") or [])]:
                if isinstance(r.get("pid"), int):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(r["pid"], signal.SIGKILL)

    # --- invoking -----------------------------------------------------------------------------

    def invoke(self, name: str, body: bytes | str, *, deployment: str | None = None,
               key: str | None = None, timeout: float = 60.0) -> InvokeResult:
        """POST ``body`` to the endpoint's scoring URI with its primary key."""
        if deployment is not None:
            self._store.get_deployment(name, deployment)  # NotFoundError, before any header
        if key is not None and not _header_safe(key):
            # never repeat the key: http.client's own error would quote it
            raise ValidationError(
                "The key given is not an endpoint key: it has characters an HTTP header "
                "cannot carry (only printable ASCII).",
                hint=f"Use a key from `mlws online-endpoint get-credentials -n {name}`.")
        self.ensure_running(name)
        ep = self._endpoint(name)
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {key or self.credentials(name)['primaryKey']}"}
        if deployment:
            headers[DEPLOYMENT_HEADER] = deployment
        conn = http.client.HTTPConnection("127.0.0.1", ep.port, timeout=timeout)
        try:
            conn.request("POST", "/score", body=body.encode() if isinstance(body, str) else body,
                         headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", errors="replace")
        except OSError as exc:
            raise MlwsError(f"The endpoint {name!r} on port {ep.port} did not answer: {exc}.",
                            hint=f"See `mlws online-endpoint show -n {name}`.") from None
        finally:
            conn.close()
        return InvokeResult(resp.status, text, resp.getheader(DEPLOYMENT_HEADER))

    # --- deployments --------------------------------------------------------------------------

    def create_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path, *,
                          all_traffic: bool = False, base_dir: Path | None = None,
                          log: Any = None, wait: bool = True) -> dict[str, Any]:
        """Create (or replace) a deployment and wait until it is Succeeded or Failed.

        ``all_traffic`` sends every request to it once it Succeeded; a Failed deployment
        changes no traffic and raises :class:`DeploymentFailedError` with its traceback.
        """
        from jupyter_mlws.endpoints.resolve import DeploymentResolver

        if isinstance(spec, (str, Path)):
            spec, base_dir = _load_spec(DeploymentSpec, spec, ("OnlineDeployment",))
        elif isinstance(spec, dict):
            from jupyter_mlws.assets.yaml_io import validate_spec

            spec = validate_spec(DeploymentSpec, spec)
        assert isinstance(spec, DeploymentSpec)
        endpoint = spec.endpoint_name
        self._endpoint(endpoint)
        previous = {d.name: d for d in self._store.list_deployments(endpoint)}.get(spec.name)
        serving = previous is not None and self.show_deployment(
            endpoint, spec.name)["state"] == SUCCEEDED
        generation = previous.generation + 1 if previous is not None else 1
        resolver = DeploymentResolver(self._ws, self.paths(endpoint), spec,
                                      base_dir or Path.cwd(), generation)
        ep_spec = EndpointSpec.model_validate(self._endpoint(endpoint).spec)
        resolved = resolver.resolve(log=log, runtime=runtime_of(self._ws, ep_spec.compute))
        self._store.put_deployment(endpoint, spec.name,
                                   spec=spec.model_dump(by_alias=True, exclude_none=True),
                                   resolved=resolved)
        if not self.ensure_running(endpoint):
            self._write_config(endpoint)
        if not wait:
            return self.show_deployment(endpoint, spec.name)
        view = self.wait_deployment(endpoint, spec.name, generation,
                                    timeout=resolved["ready_timeout_s"] + 30)
        if view["state"] == FAILED:
            if serving and previous is not None:  # roll back: the old replicas never stopped
                self._store.put_deployment(endpoint, spec.name, spec=previous.spec,
                                           resolved=previous.resolved)
                self._write_config(endpoint)
            raise DeploymentFailedError(
                f"The deployment {spec.name!r} of endpoint {endpoint!r} failed: "
                f"{view.get('error')}",
                hint=("The previous version of it keeps serving. " if serving else "")
                + "Fix the scoring script, then create the deployment again; the traffic "
                "was not changed.", endpoint=endpoint, deployment=spec.name,
                error=view.get("error"))
        if all_traffic:
            self.update_traffic(endpoint, {spec.name: 100})
        return self.show_deployment(endpoint, spec.name)

    def update_deployment(self, spec: DeploymentSpec | dict[str, Any] | str | Path, *,
                          base_dir: Path | None = None, log: Any = None,
                          wait: bool = True) -> dict[str, Any]:
        """``online-deployment update -f``: roll an existing deployment to a new spec (its old
        replicas serve until the new ones are ready; a Failed update rolls back)."""
        if isinstance(spec, (str, Path)):
            spec, base_dir = _load_spec(DeploymentSpec, spec, ("OnlineDeployment",))
        elif isinstance(spec, dict):
            from jupyter_mlws.assets.yaml_io import validate_spec

            spec = validate_spec(DeploymentSpec, spec)
        assert isinstance(spec, DeploymentSpec)
        self._store.get_deployment(spec.endpoint_name, spec.name)  # NotFoundError
        return self.create_deployment(spec, base_dir=base_dir, log=log, wait=wait)

    def wait_deployment(self, endpoint: str, name: str, generation: int | None = None, *,
                        timeout: float = 300.0) -> dict[str, Any]:
        """Wait until the deployment (of ``generation``) is Succeeded or Failed."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.show_deployment(endpoint, name, ensure=False)
            if view["state"] in (SUCCEEDED, FAILED) and (
                    generation is None or view["generation"] == generation):
                return view
            if time.monotonic() > deadline:
                raise DeploymentFailedError(
                    f"The deployment {name!r} of endpoint {endpoint!r} is still "
                    f"{view['state']} after {timeout:g} s.",
                    hint=f"Follow it with `mlws online-deployment get-logs -e {endpoint} "
                    f"-n {name}`.", endpoint=endpoint, deployment=name)
            time.sleep(POLL_S * 2)

    def show_deployment(self, endpoint: str, name: str, *, ensure: bool = True
                        ) -> dict[str, Any]:
        """A deployment with its live state, replicas and restarts."""
        if ensure:
            self.ensure_running(endpoint)
        d = self._store.get_deployment(endpoint, name)
        ep = self._endpoint(endpoint)
        status = ((read_json(self.paths(endpoint).status) or {}).get("deployments") or {}
                  ).get(name) or {}
        live = status.get("generation") == d.generation
        spec = DeploymentSpec.model_validate(d.spec)
        r = d.resolved
        return {
            "name": d.name, "endpoint_name": endpoint,
            "state": status.get("state", CREATING) if live else CREATING,
            "error": status.get("error") if live else None, "generation": d.generation,
            "model": r.get("model"), "environment": r.get("environment"),
            "env_hash": r.get("env_hash"), "runtime": r.get("runtime", "process"),
            "image": r.get("image"), "image_id": r.get("image_id"), "venv": r.get("venv"),
            "python": r.get("python"),
            "model_dir": r.get("model_dir"), "scoring_script": r.get("scoring_script"),
            "instance_count": r.get("instance_count"),
            "replicas_ready": sum(1 for x in status.get("replicas") or [] if x.get("ready")),
            "restarts": status.get("restarts", 0) if live else 0,
            "replicas": status.get("replicas", []) if live else [],
            "traffic": ep.traffic.get(name, 0),
            "mirror_traffic": (ep.spec.get("mirror_traffic") or {}).get(name, 0),
            "requests": status.get("requests", 0) if live else 0,
            "mirrored_requests": status.get("mirrored_requests", 0) if live else 0,
            "notes": spec.notes(r.get("runtime", "process")),
            "created_at": d.created_at, "updated_at": d.updated_at,
        }

    def list_deployments(self, endpoint: str) -> builtins.list[dict[str, Any]]:
        self.ensure_running(endpoint)
        return [self.show_deployment(endpoint, d.name, ensure=False)
                for d in self._store.list_deployments(endpoint)]

    def delete_deployment(self, endpoint: str, name: str) -> None:
        """Stop a deployment's replicas and forget it; refused while it takes traffic."""
        self._store.get_deployment(endpoint, name)
        if self._endpoint(endpoint).traffic.get(name, 0) > 0:
            raise ConflictError(
                f"The deployment {name!r} takes {self._endpoint(endpoint).traffic[name]}% of "
                f"endpoint {endpoint!r}'s traffic.",
                hint=f"Move its traffic first: `mlws online-endpoint update -n {endpoint} "
                "--traffic OTHER=100`.")
        docker = self._store.get_deployment(endpoint, name).resolved.get("runtime") == DOCKER
        self._store.delete_deployment(endpoint, name)
        ep = self._endpoint(endpoint)
        traffic = {k: v for k, v in ep.traffic.items() if k != name}
        mirror = {k: v for k, v in (ep.spec.get("mirror_traffic") or {}).items() if k != name}
        self._store.update_endpoint(endpoint, traffic=traffic,
                                    spec={**ep.spec, "mirror_traffic": mirror})
        paths = self.paths(endpoint)
        self._write_config(endpoint)
        deadline = time.monotonic() + STOP_WAIT_S
        while is_locked(paths.lock) and time.monotonic() < deadline:
            if name not in ((read_json(paths.status) or {}).get("deployments") or {}):
                break
            time.sleep(POLL_S)
        if docker:
            from jupyter_mlws.endpoints.containers import remove_containers

            remove_containers(paths.root, name)
        for folder in (paths.root / "code", paths.root / "models"):
            for sub in folder.glob(f"{name}-*"):
                if sub.name.rsplit("-", 1)[0] == name:
                    shutil.rmtree(sub, ignore_errors=True)

    def follow_logs(self, endpoint: str, name: str, *, lines: int = 100,
                    until: Any = None) -> Iterator[str]:
        """The last ``lines`` lines, then what the replicas write, as it comes (until
        ``until()`` is true, or forever)."""
        path = self.paths(endpoint).log(name)
        offset = path.stat().st_size if path.exists() else 0
        tail = self.logs(endpoint, name, lines=lines)
        if tail:
            yield tail + "\n"
        while until is None or not until():
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                offset += len(chunk)
                yield chunk.decode("utf-8", errors="replace")
            else:
                time.sleep(0.2)

    def logs(self, endpoint: str, name: str, *, lines: int = 100) -> str:
        """The last ``lines`` lines of a deployment's log (its replicas' output)."""
        self._store.get_deployment(endpoint, name)
        return log_tail(self.paths(endpoint).log(name), lines)
