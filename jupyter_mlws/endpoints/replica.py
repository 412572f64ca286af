"""One scoring replica: runs an Azure-style scoring script (``init()``, ``run(raw_data)``).

This file is run *by path* with the deployment environment's interpreter
(``python replica.py CONFIG.json INDEX``), so it uses the standard library only and imports
nothing from jupyter_mlws: the environment needs no extra package, and the same script serves any
Python the environment has.

It imports the scoring script, calls ``init()`` with ``AZUREML_MODEL_DIR`` set by the supervisor,
and only then listens (on a free port of 127.0.0.1) and writes that port to ``replica-N.port``:
a port file means ready. When ``init()`` raises, the traceback goes to ``replica-N.error`` and
the process exits with status 3, which the supervisor reads as "this deployment cannot start".

``POST /score`` calls ``run()`` with the body as text, or, when inference-schema decorates
``run()``, with the body's JSON fields as its arguments (at most
``max_concurrent_requests_per_instance`` calls at once); ``GET /`` is the liveness probe,
``GET /ready`` the readiness probe, ``GET /swagger.json`` an OpenAPI document of ``/score``.
It listens on ``bind_host:bind_port`` of its config (127.0.0.1 and a free port for a process;
all interfaces of the container, published on the host's 127.0.0.1 only, in Docker).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import signal
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

INIT_FAILED = 3
MAX_BODY = 100 * 1024 * 1024


def _load_script(code_dir: str, script: str) -> Any:
    sys.path.insert(0, code_dir)
    path = Path(code_dir) / script
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the scoring script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    for name in ("init", "run"):
        if not callable(getattr(module, name, None)):
            raise AttributeError(f"the scoring script {script} has no {name}() function")
    return module


def schema_parameters(run: Any) -> list[inspect.Parameter] | None:
    """run()'s parameters when inference-schema's ``@input_schema`` decorates it (the body is
    then a JSON object holding them by name, as Azure's server reads it), else ``None``."""
    try:
        from inference_schema.schema_util import is_schema_decorated
    except ImportError:
        return None
    if not is_schema_decorated(run):
        return None
    return list(inspect.signature(run).parameters.values())


def _arguments(params: list[inspect.Parameter], text: str) -> dict[str, Any]:
    """The keyword arguments of a decorated run() from a JSON object body (ValueError: a 400)."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object holding run()'s parameters")
    out = {}
    for p in params:
        value = body.get(p.name, p.default)
        if value is inspect.Parameter.empty:
            raise ValueError(f"a value is not provided for the {p.name!r} parameter")
        out[p.name] = value
    return out


def swagger(run: Any) -> dict[str, Any]:
    """A minimal OpenAPI document of ``POST /score``; with inference-schema's decorators, the
    request and response schemas they declare."""
    request: dict[str, Any] = {"type": "object"}
    response: dict[str, Any] = {}
    try:
        from inference_schema.schema_util import get_input_schema, get_output_schema

        request = get_input_schema(run) or request
        response = get_output_schema(run) or response
    except Exception:  # not installed, or run() is not decorated
        pass
    return {
        "openapi": "3.0.1",
        "info": {"title": "online endpoint", "version": "1.0"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {"/score": {"post": {
            "requestBody": {"content": {"application/json": {"schema": request}}},
            "responses": {"200": {"description": "run()'s answer",
                                  "content": {"application/json": {"schema": response}}},
                          "400": {"description": "a malformed body"},
                          "401": {"description": "no or a wrong key"},
                          "500": {"description": "run() raised"}}}}},
    }


def _encode(result: Any) -> tuple[bytes, str]:
    if isinstance(result, bytes):
        return result, "application/octet-stream"
    if isinstance(result, str):
        return result.encode(), "application/json"
    return json.dumps(result, default=str).encode(), "application/json"


def make_handler(module: Any, slots: threading.BoundedSemaphore) -> type[BaseHTTPRequestHandler]:
    params = schema_parameters(module.run)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        #: headers and body go out as separate writes: without this, Nagle's algorithm and the
        #: client's delayed ACK hold every answer ~40 ms
        disable_nagle_algorithm = True
        server_version = "mlws-replica"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the router logs requests; run()'s own prints go to the deployment log

        def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            if self.path in ("/", "/ready"):
                self._reply(200, b"Healthy", "text/plain")
            elif self.path.split("?", 1)[0] == "/swagger.json":
                self._reply(200, json.dumps(swagger(module.run)).encode())
            else:
                self._reply(404, b'{"error": "not found"}')

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self._reply(413, b'{"error": "request body too large"}')
                return
            raw = self.rfile.read(length)
            if self.path.split("?", 1)[0] not in ("/score", "/"):
                self._reply(404, b'{"error": "not found: POST /score"}')
                return
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self._reply(400, b'{"error": "the request body is not UTF-8 text"}')
                return
            try:
                kwargs = _arguments(params, text) if params is not None else None
            except ValueError as exc:
                self._reply(400, json.dumps({"error": str(exc)}).encode())
                return
            with slots:
                try:
                    result = module.run(**kwargs) if kwargs is not None else module.run(text)
                except Exception as exc:
                    traceback.print_exc()
                    sys.stdout.flush()
                    err = json.dumps({"error": f"run() raised {type(exc).__name__}: {exc}"})
                    status = getattr(exc, "http_status", 500)  # the no-code script's 400
                    self._reply(status if status in (400, 500) else 500, err.encode())
                    return
            try:
                body, ctype = _encode(result)
            except (TypeError, ValueError) as exc:
                self._reply(500, json.dumps({"error": f"run() returned what cannot be sent "
                                                      f"as JSON: {exc}"}).encode())
                return
            self._reply(200, body, ctype)

    return Handler


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)  # the supervisor is gone: so is this replica
        time.sleep(1.0)


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    index = int(argv[1])
    run_dir = Path(config["run_dir"])
    port_file = run_dir / f"replica-{index}.port"
    error_file = run_dir / f"replica-{index}.error"
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # as a container's PID 1, SIGTERM would be ignored without a handler (then killed late)
    signal.signal(signal.SIGTERM, lambda _sig, _frame: os._exit(0))
    print(f"[mlws] replica {index} of {config['deployment']}: loading "
          f"{config['scoring_script']} (AZUREML_MODEL_DIR={os.environ.get('AZUREML_MODEL_DIR')})",
          flush=True)
    try:
        os.chdir(config["code_dir"])
        module = _load_script(config["code_dir"], config["scoring_script"])
        module.init()
    except BaseException:
        text = traceback.format_exc()
        sys.stderr.write(text)
        sys.stderr.flush()
        tmp = error_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, error_file)
        return INIT_FAILED
    slots = threading.BoundedSemaphore(int(config.get("max_concurrent", 1)))
    bind = (str(config.get("bind_host", "127.0.0.1")), int(config.get("bind_port", 0)))
    server = ThreadingHTTPServer(bind, make_handler(module, slots))
    server.daemon_threads = True
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    os.replace(tmp, port_file)
    print(f"[mlws] replica {index} of {config['deployment']}: ready on port "
          f"{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
