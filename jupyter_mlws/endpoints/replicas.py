"""The replicas of one deployment, owned by the supervisor: start, watch, restart, stop.

A deployment is ``Creating`` until each of its ``instance_count`` replicas has written its port
file, then ``Succeeded``. A replica whose ``init()`` raises makes the deployment ``Failed`` with
the traceback and the log's tail, and nothing is restarted. A replica that dies later is started
again after a pause that doubles with each restart (up to :data:`MAX_BACKOFF_S`), and counted.
"""

from __future__ import annotations

import http.client
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mlws.crypto import ENV_SECRET_KEY
from jupyter_mlws.endpoints.model import CREATING, FAILED, SUCCEEDED
from jupyter_mlws.endpoints.paths import EndpointPaths, write_json

REPLICA_SCRIPT = Path(__file__).with_name("replica.py")
INIT_FAILED = 3
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
TAIL_LINES = 30


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` (empty when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


@dataclass
class Replica:
    index: int
    handle: Any = None
    port: int | None = None
    ready_once: bool = False
    restarts: int = 0
    next_start: float = 0.0
    #: when the process/container was started (probes wait ``initial_delay`` after it)
    spawned: float = 0.0
    #: consecutive failed liveness / readiness probes (written by the probe thread)
    live_failures: int = 0
    ready_failures: int = 0


@dataclass
class DeploymentRunner:
    """One deployment's replicas, as its config (written by the workspace) asks."""

    cfg: dict[str, Any]
    paths: EndpointPaths
    state: str = CREATING
    error: str | None = None
    started: float = field(default_factory=time.time)
    replicas: list[Replica] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.cfg["name"])

    @property
    def run_dir(self) -> Path:
        return self.paths.run_dir(self.name)

    @property
    def in_docker(self) -> bool:
        return self.cfg.get("runtime") == "docker"

    def start(self) -> None:
        """Start ``instance_count`` replicas (and the probes that watch them)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for old in self.run_dir.glob("replica-*"):
            old.unlink(missing_ok=True)
        write_json(self.run_dir / "replica.json", {
            "deployment": self.name, "run_dir": str(self.run_dir),
            "code_dir": self.cfg["code_dir"], "scoring_script": self.cfg["scoring_script"],
            "max_concurrent": self.cfg.get("max_concurrent", 1)})
        if self.in_docker:
            from jupyter_mlws.endpoints import containers

            containers.prepare(self.cfg, self.paths, self.run_dir)
        self.replicas = [Replica(i) for i in range(int(self.cfg.get("instance_count", 1)))]
        for r in self.replicas:
            self._spawn(r)
        self.probes = Probes(self)
        self.probes.start()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # the secret key opens every stored credential: user code never needs it
        for key in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "JPY_PARENT_PID", ENV_SECRET_KEY):
            env.pop(key, None)
        python = str(self.cfg["python"])
        bindir = str(Path(python).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        if python != sys.executable and (Path(bindir).parent / "pyvenv.cfg").exists():
            env["VIRTUAL_ENV"] = str(Path(bindir).parent)
        env.update({str(k): str(v) for k, v in (self.cfg.get("env") or {}).items()})
        env["AZUREML_MODEL_DIR"] = str(self.cfg.get("model_dir") or "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _spawn(self, r: Replica) -> None:
        from jupyter_mlws.compute.local import start_process

        for suffix in (".port", ".error"):
            (self.run_dir / f"replica-{r.index}{suffix}").unlink(missing_ok=True)
        r.port = None
        r.spawned = time.time()
        r.live_failures = r.ready_failures = 0
        if self.in_docker:
            self._spawn_container(r)
            return
        r.handle = start_process(
            [str(self.cfg["python"]), str(REPLICA_SCRIPT), str(self.run_dir / "replica.json"),
             str(r.index)],
            cwd=str(self.cfg["code_dir"]), env=self._env(),
            log_path=self.paths.log(self.name))

    def _spawn_container(self, r: Replica) -> None:
        from jupyter_mlws.endpoints import containers

        env = {str(k): str(v) for k, v in (self.cfg.get("env") or {}).items()}
        try:
            r.handle = containers.start(self.cfg, self.paths, self.run_dir, r.index, env,
                                        REPLICA_SCRIPT)
        except Exception as exc:  # the engine is down, the image is gone...
            r.handle = None
            if self.state == CREATING:
                self._fail(f"the container of replica {r.index} could not start: {exc}")
            else:
                r.restarts += 1
                r.next_start = time.time() + min(FIRST_BACKOFF_S * 2 ** r.restarts,
                                                 MAX_BACKOFF_S)

    def tick(self, now: float) -> None:
        """Look at every replica once: ready, died, due for a restart."""
        if self.state == FAILED:
            return
        for r in self.replicas:
            if r.handle is None:
                if now >= r.next_start:
                    self._spawn(r)
                continue
            code = r.handle.poll()
            if code is None and r.live_failures >= self._probe("liveness", "failure_threshold"):
                self._log(f"[mlws] replica {r.index} failed {r.live_failures} liveness probes "
                          "in a row: stopping it")
                r.handle.stop(grace=1.0)
                code = r.handle.poll()
                code = -9 if code is None else code
            if code is None:
                if r.port is None:
                    self._check_ready(r)
                continue
            self._on_exit(r, code, now)
            if self.state == FAILED:
                return
        if self.state == CREATING:
            if all(r.ready_once for r in self.replicas):
                self.state = SUCCEEDED
            elif now - self.started > float(self.cfg.get("ready_timeout_s", 300)):
                self._fail(f"the replicas were not ready within "
                           f"{self.cfg.get('ready_timeout_s', 300)} s (readiness_probe)")

    def _probe(self, kind: str, field: str) -> int:
        return int(((self.cfg.get("probes") or {}).get(kind) or {}).get(field) or
                   _PROBE_DEFAULTS[field])

    def _log(self, line: str) -> None:
        with open(self.paths.log(self.name), "a") as log:
            log.write(line + "\n")

    def _check_ready(self, r: Replica) -> None:
        try:
            port = int((self.run_dir / f"replica-{r.index}.port").read_text())
        except (OSError, ValueError):
            return
        r.port = r.handle.host_port if self.in_docker else port
        r.ready_once = True

    def _on_exit(self, r: Replica, code: int, now: float) -> None:
        r.handle.close()
        r.handle = None
        r.port = None
        error_file = self.run_dir / f"replica-{r.index}.error"
        if self.state == CREATING:
            if code == INIT_FAILED and error_file.exists():
                self._fail("init() raised:\n" + error_file.read_text(errors="replace"))
            else:
                self._fail(f"replica {r.index} exited with status {code} before it was ready")
            return
        r.restarts += 1
        delay = min(FIRST_BACKOFF_S * 2 ** (r.restarts - 1), MAX_BACKOFF_S)
        r.next_start = now + delay
        self._log(f"[mlws] replica {r.index} exited with status {code}; restart "
                  f"{r.restarts} in {delay:g} s")

    def _fail(self, reason: str) -> None:
        self.state = FAILED
        tail = log_tail(self.paths.log(self.name))
        self.error = reason + ("\n--- last lines of the deployment log ---\n" + tail
                               if tail else "")
        self.stop()

    def ports(self) -> tuple[int, ...]:
        """The ports of the replicas that are alive and ready (a replica failing its readiness
        probe ``failure_threshold`` times in a row takes no traffic until it passes again)."""
        limit = self._probe("readiness", "failure_threshold")
        return tuple(r.port for r in self.replicas if r.port is not None
                     and r.handle is not None and r.ready_failures < limit)

    def stop(self) -> None:
        probes = getattr(self, "probes", None)
        if probes is not None:
            probes.stopping.set()
        for r in self.replicas:
            if r.handle is not None:
                r.handle.stop(grace=2.0)
                r.handle = None
                r.port = None

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state, "error": self.error, "generation": self.cfg.get("generation"),
            "restarts": sum(r.restarts for r in self.replicas),
            "replicas": [self._replica_status(r) for r in self.replicas],
        }

    def _replica_status(self, r: Replica) -> dict[str, Any]:
        out: dict[str, Any] = {"index": r.index, "port": r.port, "ready": r.port is not None,
                               "restarts": r.restarts}
        if self.in_docker:
            out["pid"] = None
            out["container"] = r.handle.container_id if r.handle is not None else None
        else:
            out["pid"] = r.handle.proc.pid if r.handle is not None else None
        return out


_PROBE_DEFAULTS = {"initial_delay": 10, "period": 10, "timeout": 2, "failure_threshold": 30,
                   "success_threshold": 1}


class Probes(threading.Thread):
    """Azure's liveness and readiness probes: ``GET /`` and ``GET /ready`` of every ready
    replica each ``period`` seconds (after ``initial_delay``), failing after ``timeout``.
    The runner stops a replica after ``failure_threshold`` liveness failures in a row (it is
    then restarted with backoff) and routes none to it after as many readiness failures."""

    def __init__(self, runner: DeploymentRunner) -> None:
        super().__init__(daemon=True, name=f"probes-{runner.name}")
        self.runner = runner
        self.stopping = threading.Event()

    def _check(self, port: int, path: str, timeout: float) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def run(self) -> None:
        runner = self.runner
        due = {"liveness": 0.0, "readiness": 0.0}
        while not self.stopping.wait(0.2):
            now = time.time()
            for kind, path in (("liveness", "/"), ("readiness", "/ready")):
                if now < due[kind]:
                    continue
                due[kind] = now + runner._probe(kind, "period")
                for r in list(runner.replicas):
                    port = r.port
                    if port is None or now - r.spawned < runner._probe(kind, "initial_delay"):
                        continue
                    ok = self._check(port, path, runner._probe(kind, "timeout"))
                    if kind == "liveness":
                        r.live_failures = 0 if ok else r.live_failures + 1
                    else:
                        r.ready_failures = 0 if ok else r.ready_failures + 1
