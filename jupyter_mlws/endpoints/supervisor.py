"""The supervisor: one detached process per endpoint, ``python -m jupyter_mlws.endpoints.supervisor
ENDPOINT_DIR``.

It holds ``supervisor.lock`` while it lives (a workspace that finds the lock free knows it died,
and starts another: see :meth:`EndpointOperations.ensure_running`), serves the endpoint's port
with the :class:`~jupyter_mlws.endpoints.router.Router`, and owns the replicas of every
deployment. It follows ``config.json`` (re-read when it changes) and reports in ``status.json``.
SIGTERM, or the config file going away, stops the replicas and the process. On Docker, it first
removes the containers a killed supervisor of the same endpoint left (found by their label).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_mlws.endpoints.model import FAILED, SUCCEEDED
from jupyter_mlws.endpoints.paths import EndpointPaths, write_json
from jupyter_mlws.endpoints.replicas import DeploymentRunner
from jupyter_mlws.endpoints.router import Router, RouteTable

TICK_S = 0.1
#: status.json is rewritten at least this often, so a reader that lost it gets it back
STATUS_EVERY_S = 2.0
#: Ports tried after the recorded one when it is taken, before asking the OS for any.
PORT_TRIES = 20


def _deployment_key(cfg: dict[str, Any]) -> str:
    """What the replicas run; a record put back as it was (a rollback) has the same key."""
    return json.dumps({k: v for k, v in cfg.items() if k != "generation"}, sort_keys=True,
                      default=str)


class Supervisor:
    def __init__(self, paths: EndpointPaths) -> None:
        self.paths = paths
        #: the generation of each deployment that serves, and the next one while it starts
        self.runners: dict[str, DeploymentRunner] = {}
        self.pending: dict[str, DeploymentRunner] = {}
        #: replaced runners, stopped once the requests they were sent have had time to end
        self.draining: list[tuple[DeploymentRunner, float]] = []
        self.config: dict[str, Any] = {}
        self._config_raw = b""
        self.config_digest = ""
        self.keys: tuple[str, ...] = ()
        self.stopping = threading.Event()
        self.router: Router | None = None
        self._last_status: dict[str, Any] | None = None
        self._last_write = 0.0

    def _bind(self, port: int) -> Router:
        """The router on ``port``, else on the next free port (reported in status.json)."""
        for candidate in [*range(port, port + PORT_TRIES), 0]:
            try:
                return Router(candidate, RouteTable())
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                print(f"[mlws] port {candidate} is in use", flush=True)
        raise OSError(errno.EADDRINUSE, "no free port")  # pragma: no cover

    def _load_config(self) -> bool:
        """Apply config.json when its content changed; False when it is gone (deleted)."""
        try:
            raw = self.paths.config.read_bytes()
        except FileNotFoundError:
            return False
        if raw == self._config_raw:
            return True
        try:
            data = json.loads(raw)
        except ValueError:
            return True  # being replaced: next tick
        from jupyter_mlws.crypto import SecretBox

        keys = SecretBox.load(create=False).decrypt(data["keys"], what="the endpoint")
        self.keys = tuple(v for v in keys.values() if v)
        self.config = data
        self._config_raw = raw
        self.config_digest = hashlib.sha256(raw).hexdigest()
        self._reconcile()
        return True

    def _reconcile(self) -> None:
        """Start what config.json adds, stop what it removes; a changed deployment is rolled:
        its new replicas start beside the old ones, which serve until the new are ready."""
        wanted: dict[str, dict[str, Any]] = self.config.get("deployments") or {}
        for name in set(self.runners) | set(self.pending):
            if name not in wanted:
                print(f"[mlws] stopping deployment {name}", flush=True)
                for pool in (self.runners, self.pending):
                    if name in pool:
                        pool.pop(name).stop()
        for name, cfg in wanted.items():
            current, pending = self.runners.get(name), self.pending.get(name)
            key = _deployment_key(cfg)
            if pending is not None and _deployment_key(pending.cfg) != key:
                self.pending.pop(name).stop()  # superseded, or rolled back
                pending = None
            if current is not None and _deployment_key(current.cfg) == key:
                current.cfg["generation"] = cfg.get("generation")  # a rollback: same replicas
                continue
            if pending is not None:
                continue
            print(f"[mlws] starting deployment {name} (generation {cfg.get('generation')})",
                  flush=True)
            runner = DeploymentRunner(dict(cfg), self.paths)
            if current is not None and current.state == SUCCEEDED:
                self.pending[name] = runner  # rolling: the current one serves meanwhile
            else:
                if current is not None:
                    current.stop()
                self.runners[name] = runner
            runner.start()

    def _promote(self, now: float) -> None:
        """A pending generation that is ready takes over; the old one drains, then stops."""
        for name, runner in list(self.pending.items()):
            if runner.state == SUCCEEDED:
                old = self.runners[name]
                self.runners[name] = self.pending.pop(name)
                self.draining.append((old, now + float(old.cfg.get("timeout_s", 5.0)) + 0.5))
                print(f"[mlws] deployment {name}: generation {runner.cfg.get('generation')} "
                      "serves", flush=True)
        for item in list(self.draining):
            if now >= item[1]:
                item[0].stop()
                self.draining.remove(item)

    def _route_table(self) -> RouteTable:
        return RouteTable(
            ports={n: (r.ports() if r.state != FAILED else ()) for n, r in self.runners.items()},
            traffic={k: int(v) for k, v in (self.config.get("traffic") or {}).items()},
            keys=self.keys,
            timeout_s={n: float(r.cfg.get("timeout_s", 5.0)) for n, r in self.runners.items()},
            mirror={k: int(v) for k, v in (self.config.get("mirror_traffic") or {}).items()})

    def _write_status(self, port: int) -> None:
        deployments = {n: r.status() for n, r in self.runners.items()}
        for name, runner in self.pending.items():  # the generation being rolled out
            serving = deployments[name]
            deployments[name] = {**runner.status(), "serving_generation": serving["generation"],
                                 "serving_replicas": serving["replicas"]}
        if self.router is not None:
            routed = dict(self.router.counts)  # read first: a request counts its mirror first
            for key, counts in (("requests", routed), ("mirrored_requests",
                                                        dict(self.router.mirrored))):
                for name, count in counts.items():
                    if name in deployments:
                        deployments[name][key] = count
        status = {"pid": os.getpid(), "port": port, "config": self.config_digest,
                  "deployments": deployments}
        now = time.monotonic()
        if status != self._last_status or now - self._last_write > STATUS_EVERY_S:
            write_json(self.paths.status, status)
            self._last_status = status
            self._last_write = now

    def _remove_leftovers(self) -> None:
        """Remove the containers a killed supervisor of this endpoint left running."""
        try:
            wanted = json.loads(self.paths.config.read_bytes()).get("deployments") or {}
        except (OSError, ValueError):
            return
        if any(d.get("runtime") == "docker" for d in wanted.values()):
            from jupyter_mlws.endpoints.containers import remove_containers

            found = remove_containers(self.paths.root)
            if found:
                print(f"[mlws] removed {found} container(s) left by a previous supervisor",
                      flush=True)

    def run(self) -> int:
        self._remove_leftovers()
        if not self._load_config():
            return 1
        router = self.router = self._bind(int(self.config["port"]))
        threading.Thread(target=router.serve, daemon=True, name="router").start()
        print(f"[mlws] endpoint {self.config.get('endpoint')} on 127.0.0.1:{router.port} "
              f"(pid {os.getpid()})", flush=True)
        try:
            while not self.stopping.is_set():
                if not self._load_config():
                    break
                now = time.time()
                for runner in [*self.runners.values(), *self.pending.values()]:
                    runner.tick(now)
                self._promote(now)
                table = self._route_table()
                if table != router.table:
                    router.table = table
                self._write_status(router.port)
                self.stopping.wait(TICK_S)
        finally:
            for runner in [*self.runners.values(), *self.pending.values(),
                           *(d[0] for d in self.draining)]:
                runner.stop()
            router.close()
            print("[mlws] supervisor stopped", flush=True)
        return 0


def main(argv: list[str]) -> int:
    from jupyter_mlws.jobs.runner import try_lock

    paths = EndpointPaths(Path(argv[0]))
    lock = try_lock(paths.lock)
    if lock is None:
        return 0  # another supervisor owns this endpoint
    sup = Supervisor(paths)

    def _stop(_sig: int, _frame: Any) -> None:
        sup.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        return sup.run()
    finally:
        lock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
