"""What the Jupyter surfaces (REST routes, the sidebar, ``%deploy`` and its widget) need of
``ws.endpoints`` beyond the facade: endpoints with their deployments in one call, a deployment
log addressed by byte offset (so a client can follow it), and a timed invoke.

Only the public facade is used; the replicas' log is read as untrusted (never through a link).
"""

from __future__ import annotations

import json
import time
from typing import Any

from jupyter_mlws.errors import ValidationError

#: The most log bytes one read returns; a follower asks again from the returned offset.
LOG_CHUNK_BYTES = 1 << 20
#: The most response bytes a timed invoke hands back (a test box shows them, not a dataset).
INVOKE_MAX_CHARS = 1 << 20


def split_ref(ref: str) -> tuple[str, str | None]:
    """``azureml:name:3``, ``name:3``, ``name@latest``, ``name`` -> ``(name, version or None)``."""
    bare = ref.removeprefix("azureml:")
    if bare.endswith("@latest"):
        return bare[: -len("@latest")], None
    name, _, version = bare.partition(":")
    return name, version or None


def check_refs(ws: Any, spec: dict[str, Any]) -> None:
    """The model and environment references of a deployment spec exist (else NotFoundError),
    and a spec without code deploys an ``mlflow_model`` (else ValidationError), before anything
    is built."""
    model = ws.models.get(*split_ref(spec["model"])) if isinstance(spec.get("model"), str) else None
    if "code_configuration" not in spec and model is not None and model.type != "mlflow_model":
        raise ValidationError(f"The model {model.name}:{model.version} is a {model.type}, so the "
                              "deployment needs a scoring script (only an mlflow_model deploys "
                              "without code).", hint="Give a scoring script with init() and "
                              "run(raw_data), or register the model with type mlflow_model.")
    if isinstance(spec.get("environment"), str):
        ws.environments.get(*split_ref(spec["environment"]))


def endpoint_with_deployments(ws: Any, name: str) -> dict[str, Any]:
    """``ws.endpoints.show(name)`` with ``deployment_list``: each deployment's full view."""
    view = ws.endpoints.show(name)
    view["deployment_list"] = ws.endpoints.list_deployments(name)
    return view


def list_with_deployments(ws: Any) -> list[dict[str, Any]]:
    """Every endpoint, each with its deployments' full views."""
    return [endpoint_with_deployments(ws, ep["name"]) for ep in ws.endpoints.list()]


def _log_file(ws: Any, endpoint: str, deployment: str) -> tuple[Any, Any]:
    ws.endpoints.show_deployment(endpoint, deployment, ensure=False)  # NotFoundError first
    paths = ws.endpoints.paths(endpoint)
    return paths.log(deployment), paths.root


def read_log(ws: Any, endpoint: str, deployment: str, offset: int = 0, *,
             max_bytes: int = LOG_CHUNK_BYTES) -> dict[str, Any]:
    """The deployment's log from byte ``offset``: ``{text, offset, done}``; pass ``offset``
    back to follow. ``done`` stays false: a deployment's log grows as long as it lives."""
    from jupyter_mlws.jobs.logs import decode_complete, read_log_chunk

    path, root = _log_file(ws, endpoint, deployment)
    data, _end, total = read_log_chunk([path], max(0, offset), max_bytes, root=root)
    text, used = decode_complete(data, False)
    return {"text": text, "offset": min(max(0, offset), total) + used, "done": False}


def read_log_tail(ws: Any, endpoint: str, deployment: str, lines: int) -> dict[str, Any]:
    """The last ``lines`` lines, with the offset to follow from (the size before reading, so a
    line written meanwhile is shown again rather than lost)."""
    from jupyter_mlws.jobs.logs import log_size
    from jupyter_mlws.jobs.logs import read_log_tail as tail_of

    path, root = _log_file(ws, endpoint, deployment)
    total = log_size([path], root)
    text = tail_of([path], root, lines)
    return {"text": text + ("\n" if text else ""), "offset": total, "done": False}


def request_bytes(request: Any = None, request_text: str | None = None) -> bytes:
    """The body to POST: ``request_text`` as it is, else ``request`` as JSON."""
    if request_text is not None:
        if request is not None:
            raise ValidationError("Give either request (JSON) or request_text, not both.")
        return request_text.encode("utf-8")
    if request is None:
        raise ValidationError("There is no request body to send.",
                              hint='Give a JSON value, e.g. {"data": [[1, 2]]}.')
    return json.dumps(request).encode("utf-8")


def timed_invoke(ws: Any, endpoint: str, body: bytes, *, deployment: str | None = None,
                 timeout: float = 60.0) -> dict[str, Any]:
    """Invoke the endpoint with its primary key (used here, never returned); the answer with
    its status, the deployment that answered and the round-trip latency in milliseconds."""
    ws.endpoints.show(endpoint)  # NotFoundError, and a live supervisor, before the clock starts
    t0 = time.perf_counter()
    result = ws.endpoints.invoke(endpoint, body, deployment=deployment, timeout=timeout)
    latency_ms = (time.perf_counter() - t0) * 1000
    text = result.body
    truncated = len(text) > INVOKE_MAX_CHARS
    parsed: Any = None
    if not truncated:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    return {"status": result.status, "ok": result.ok, "deployment": result.deployment,
            "latency_ms": round(latency_ms, 3), "body": text[:INVOKE_MAX_CHARS],
            "json": parsed, "truncated": truncated}
