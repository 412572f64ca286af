"""The replicas of one deployment, owned by the supervisor: start, watch, restart, stop.

A deployment is ``Creating`` until each of its ``instance_count`` replicas has written its port
file, then ``Succeeded``. A replica whose ``init()`` raises makes the deployment ``Failed`` with
the traceback and the log's tail, and nothing is restarted. A replica that dies later is started
again after a pause that doubles with each restart (up to :data:`MAX_BACKOFF_S`), and counted.
"""

from __future__ import annotations

import os
import sys
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

    def start(self) -> None:
        """Start ``instance_count`` replicas."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for old in self.run_dir.glob("replica-*"):
            old.unlink(missing_ok=True)
        write_json(self.run_dir / "replica.json", {
            "deployment": self.name, "run_dir": str(self.run_dir),
            "code_dir": self.cfg["code_dir"], "scoring_script": self.cfg["scoring_script"],
            "max_concurrent": self.cfg.get("max_concurrent", 1)})
        self.replicas = [Replica(i) for i in range(int(self.cfg.get("instance_count", 1)))]
        for r in self.replicas:
            self._spawn(r)

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
        r.handle = start_process(
            [str(self.cfg["python"]), str(REPLICA_SCRIPT), str(self.run_dir / "replica.json"),
             str(r.index)],
            cwd=str(self.cfg["code_dir"]), env=self._env(),
            log_path=self.paths.log(self.name))

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

    def _check_ready(self, r: Replica) -> None:
        try:
            r.port = int((self.run_dir / f"replica-{r.index}.port").read_text())
            r.ready_once = True
        except (OSError, ValueError):
            pass

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
        with open(self.paths.log(self.name), "a") as log:
            log.write(f"[mlws] replica {r.index} exited with status {code}; restart "
                      f"{r.restarts} in {delay:g} s\n")

    def _fail(self, reason: str) -> None:
        self.state = FAILED
        tail = log_tail(self.paths.log(self.name))
        self.error = reason + ("\n--- last lines of the deployment log ---\n" + tail
                               if tail else "")
        self.stop()

    def ports(self) -> tuple[int, ...]:
        """The ports of the replicas that are alive and ready."""
        return tuple(r.port for r in self.replicas if r.port is not None and r.handle is not None)

    def stop(self) -> None:
        for r in self.replicas:
            if r.handle is not None:
                r.handle.stop(grace=2.0)
                r.handle = None
                r.port = None

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state, "error": self.error, "generation": self.cfg.get("generation"),
            "restarts": sum(r.restarts for r in self.replicas),
            "replicas": [{"index": r.index, "pid": r.handle.proc.pid if r.handle else None,
                          "port": r.port, "ready": r.port is not None, "restarts": r.restarts}
                         for r in self.replicas],
        }
