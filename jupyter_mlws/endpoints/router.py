"""The endpoint's one port: checks the key, picks a deployment, forwards to one of its replicas.

A threaded HTTP/1.1 server of the standard library (keep-alive on both sides): each router thread
keeps one persistent connection per replica, so a request costs one loopback round trip more
than calling the replica directly. The supervisor swaps the :class:`RouteTable` whenever replicas
or traffic change; a request reads the table once.
"""

from __future__ import annotations

import hmac
import http.client
import json
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEPLOYMENT_HEADER = "azureml-model-deployment"
MAX_BODY = 100 * 1024 * 1024


@dataclass(frozen=True)
class RouteTable:
    """Where requests may go: ready replica ports per deployment, weights, accepted keys."""

    ports: dict[str, tuple[int, ...]] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    timeout_s: dict[str, float] = field(default_factory=dict)
    #: deployments sent a copy of this share (%) of the requests, their answers discarded
    mirror: dict[str, int] = field(default_factory=dict)

    def pick(self, rng: random.Random) -> str | None:
        """A deployment drawn by traffic weight among those with weight > 0."""
        names = [n for n, w in self.traffic.items() if w > 0]
        if not names:
            return None
        return rng.choices(names, weights=[self.traffic[n] for n in names])[0]

    def authorized(self, header: str | None) -> bool:
        if not header or not self.keys:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        token_b = token.strip().encode()
        ok = False
        for key in self.keys:  # compare with every key, in constant time
            ok |= hmac.compare_digest(token_b, key.encode())
        return ok


class Router:
    """Holds the current table and the server; :meth:`serve` blocks."""

    def __init__(self, port: int, table: RouteTable) -> None:
        self.table = table
        self._rr: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.counts: dict[str, int] = {}
        #: copies of requests sent to mirror deployments (answered or not), per deployment
        self.mirrored: dict[str, int] = {}
        self._mirror_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mirror")

    def next_port(self, deployment: str) -> int | None:
        ports = self.table.ports.get(deployment) or ()
        if not ports:
            return None
        with self._lock:
            i = self._rr.get(deployment, 0)
            self._rr[deployment] = i + 1
            self.counts[deployment] = self.counts.get(deployment, 0) + 1
        return ports[i % len(ports)]

    def serve(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._mirror_pool.shutdown(wait=False, cancel_futures=True)

    def mirror(self, name: str, body: bytes, ctype: str, rid: str) -> None:
        """Send a copy of a request to the mirror deployment ``name``; its answer is dropped."""
        port = self.next_port(name)
        if port is None:
            return
        with self._lock:
            self.mirrored[name] = self.mirrored.get(name, 0) + 1
        self._mirror_pool.submit(_send_copy, port, body, ctype, rid,
                                 self.table.timeout_s.get(name, 5.0))


def _send_copy(port: int, body: bytes, ctype: str, rid: str, timeout: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/score", body=body,
                     headers={"Content-Type": ctype, "x-request-id": rid})
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()


class _Handler(BaseHTTPRequestHandler):
    """One request to the endpoint; ``router`` and ``local`` are set per server."""

    router: Router
    local: threading.local
    rng = random.Random()
    protocol_version = "HTTP/1.1"
    #: headers and body go out as separate writes: without this, Nagle's algorithm and the
    #: client's delayed ACK hold every answer ~40 ms
    disable_nagle_algorithm = True
    server_version = "mlws-endpoint"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _reply(self, status: int, payload: dict[str, Any] | bytes, *,
               deployment: str | None = None, ctype: str = "application/json",
               request_id: str = "") -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", request_id or str(uuid.uuid4()))
        if deployment:
            self.send_header(DEPLOYMENT_HEADER, deployment)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/":
            self._reply(200, {"status": "Healthy"})
        elif self.path.split("?", 1)[0] == "/swagger.json":
            self._swagger()
        else:
            self._reply(404, {"error": "not found: POST /score"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._reply(413, {"error": "request body too large"})
            return
        body = self.rfile.read(length)
        table = self.router.table
        rid = self.headers.get("x-request-id") or str(uuid.uuid4())
        if self.path.split("?", 1)[0] != "/score":
            self._reply(404, {"error": "not found: POST /score"}, request_id=rid)
            return
        if not table.authorized(self.headers.get("Authorization")):
            self._reply(401, {"error": "a key is required: Authorization: Bearer <key> "
                              "(`mlws online-endpoint get-credentials`)"}, request_id=rid)
            return
        chosen = self.headers.get(DEPLOYMENT_HEADER)
        if chosen and chosen not in table.ports:
            self._reply(404, {"error": f"no deployment {chosen!r} in this endpoint"},
                        request_id=rid)
            return
        name = chosen or table.pick(self.rng)
        if not chosen:  # as on Azure, a request naming its deployment is not mirrored
            for target, share in table.mirror.items():
                if share > 0 and target != name and self.rng.random() * 100 < share:
                    self.router.mirror(target, body, self.headers.get("Content-Type") or
                                       "application/json", rid)
        if name is None:
            self._reply(503, {"error": "no deployment takes traffic: set it with "
                              "`mlws online-endpoint update --traffic NAME=100`"},
                        request_id=rid)
            return
        self._forward(name, body, rid, table.timeout_s.get(name, 5.0))

    def _swagger(self) -> None:
        """The OpenAPI document of the deployment the header names (else the one with the most
        traffic), as its replica describes its run(); a minimal one when none is ready."""
        table = self.router.table
        name = self.headers.get(DEPLOYMENT_HEADER) or max(
            table.traffic, key=lambda n: table.traffic[n], default=None)
        ports = table.ports.get(name or "") or ()
        if ports:
            conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=5)
            try:
                conn.request("GET", "/swagger.json")
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200:
                    self._reply(200, data, deployment=name)
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
        from jupyter_mlws.endpoints.replica import swagger

        self._reply(200, swagger(None), deployment=name)

    def _forward(self, name: str, body: bytes, rid: str, timeout: float) -> None:
        conns: dict[int, http.client.HTTPConnection] = self.local.__dict__.setdefault("c", {})
        ctype = self.headers.get("Content-Type") or "application/json"
        for _attempt in range(2):  # a replica that just died: once more on another
            port = self.router.next_port(name)
            if port is None:
                self._reply(503, {"error": f"deployment {name!r} has no ready replica"},
                            deployment=name, request_id=rid)
                return
            conn = conns.get(port)
            if conn is None:
                conn = conns[port] = http.client.HTTPConnection("127.0.0.1", port,
                                                                timeout=timeout)
            try:
                conn.request("POST", "/score", body=body,
                             headers={"Content-Type": ctype, "x-request-id": rid})
                resp = conn.getresponse()
                data = resp.read()
            except TimeoutError:
                conn.close()
                conns.pop(port, None)
                self._reply(504, {"error": f"deployment {name!r} did not answer within "
                                  f"{timeout:g} s (request_settings.request_timeout_ms)"},
                            deployment=name, request_id=rid)
                return
            except (OSError, http.client.HTTPException):
                conn.close()
                conns.pop(port, None)
                continue
            self._reply(resp.status, data, deployment=name, request_id=rid,
                        ctype=resp.getheader("Content-Type") or "application/json")
            return
        self._reply(502, {"error": f"deployment {name!r}: its replicas did not answer"},
                    deployment=name, request_id=rid)


def _make_handler(router: Router) -> type[BaseHTTPRequestHandler]:
    return type("RouterHandler", (_Handler,), {"router": router, "local": threading.local()})
