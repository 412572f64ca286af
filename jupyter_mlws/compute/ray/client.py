"""The few endpoints of the Ray dashboard's REST API this target needs (standard library
only: the workspace process never imports ``ray``), the auth token, and cluster information for
``mlws compute show``."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from jupyter_mlws.errors import MlwsError, RayHeadUnreachableError, ValidationError

DEFAULT_PORT = 8265
HTTP_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 3.0






def normalize_address(address: str) -> str:
    """``HEAD``, ``HEAD:8265`` or ``http(s)://HEAD:8265`` -> ``http(s)://HEAD:PORT``."""
    text = address.strip().rstrip("/")
    if text.startswith("ray://"):
        raise ValidationError(
            f"{address!r} is a Ray Client address; jobs go through the dashboard's Jobs API.",
            hint="Use the dashboard address of the head, e.g. http://HEAD:8265.")
    if "://" not in text:
        text = "http://" + text
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationError(f"{address!r} is not a Ray dashboard address.",
                              hint="Use http://HEAD:8265.")
    port = parsed.port or (DEFAULT_PORT if parsed.scheme == "http" else 443)
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{parsed.scheme}://{host}:{port}{parsed.path}"


_MISSING: Any = object()


class RayJobsClient:
    """The few endpoints of the Ray dashboard this target needs (standard library only)."""

    def __init__(self, address: str, *, token: str | None = None,
                 timeout: float = HTTP_TIMEOUT_S) -> None:
        self.address = normalize_address(address)
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # never shows the token
        return f"RayJobsClient({self.address!r})"

    def _request(self, method: str, path: str, body: Any = None, *, data: bytes | None = None,
                 timeout: float | None = None, missing_ok: bool = False) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        req = urllib.request.Request(self.address + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace").strip()
            if missing_ok and exc.code == 404:
                return _MISSING
            if exc.code in (401, 403):
                first = text.splitlines()[0] if text else str(exc.reason)
                hint = ("The cluster runs in token mode: set the compute's settings.token_env to "
                        "the name of an environment variable, and put the token in it."
                        if exc.code == 401 or not self._token else
                        "Check the token in the environment variable named by the compute's "
                        "settings.token_env.")
                raise MlwsError(f"The Ray head at {self.address} refused the request (HTTP "
                                f"{exc.code}: {first}).", hint=hint) from None
            last = text.splitlines()[-1] if text else str(exc.reason)
            raise MlwsError(f"The Ray head at {self.address} answered {method} {path} with "
                            f"HTTP {exc.code}: {last[:500]}", status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RayHeadUnreachableError(
                f"The Ray head at {self.address} cannot be reached ({reason}).",
                hint="Check that the cluster is up and that its dashboard listens on that "
                "address (ray start --head --dashboard-host ...), then submit again.",
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def version(self, timeout: float | None = None) -> dict[str, Any]:
        return dict(self._request("GET", "/api/version", timeout=timeout) or {})

    def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("POST", "/api/jobs/", payload) or {})

    def info(self, submission_id: str) -> dict[str, Any] | None:
        found = self._request("GET", f"/api/jobs/{urllib.parse.quote(submission_id)}",
                              missing_ok=True)
        return dict(found) if isinstance(found, dict) else None

    def logs(self, submission_id: str) -> str:
        found = self._request("GET", f"/api/jobs/{urllib.parse.quote(submission_id)}/logs",
                              missing_ok=True)
        return str(found.get("logs") or "") if isinstance(found, dict) else ""

    def stop(self, submission_id: str) -> bool:
        found = self._request("POST", f"/api/jobs/{urllib.parse.quote(submission_id)}/stop",
                              missing_ok=True)
        return bool(found.get("stopped")) if isinstance(found, dict) else False

    def nodes(self) -> list[dict[str, Any]]:
        found = self._request("GET", "/nodes?view=summary") or {}
        return list((found.get("data") or {}).get("summary") or [])

    def cluster_status(self) -> dict[str, Any]:
        found = self._request("GET", "/api/cluster_status") or {}
        return dict(found.get("data") or {})

    def package_exists(self, name: str) -> bool:
        """Whether ``gcs://name`` is stored in the cluster (this also pins it for a while)."""
        return self._request("GET", f"/api/packages/gcs/{name}", missing_ok=True) is not _MISSING

    def upload_package(self, name: str, data: bytes) -> None:
        self._request("PUT", f"/api/packages/gcs/{name}", data=data, timeout=120)


def token_from(settings: dict[str, Any], compute_name: str = "") -> str | None:
    """The Ray auth token from the environment variable named by ``settings.token_env``."""
    var = settings.get("token_env")
    if not var:
        return None
    value = os.environ.get(str(var))
    if not value:
        raise ValidationError(
            f"The Ray compute {compute_name!r} reads its auth token from the environment "
            f"variable {var}, which is not set here.",
            hint=f"Set {var} in the environment of the process that submits jobs (the shell, "
            "or the Jupyter server).")
    return value.strip()




def cluster_info(address: str, token: str | None = None, *,
                 timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """The cluster's version, nodes, resources and health; never raises for an unreachable head."""
    try:
        client = RayJobsClient(address, token=token, timeout=timeout)
    except MlwsError as exc:
        return {"address": address, "health": "invalid address", "error": str(exc)}
    info: dict[str, Any] = {"address": client.address}
    try:
        info["ray_version"] = client.version().get("ray_version")
        raw_nodes = client.nodes()
    except MlwsError as exc:
        info.update(health="unreachable" if isinstance(exc, RayHeadUnreachableError)
                    else "refused", error=str(exc), nodes=[])
        return info
    nodes = []
    totals: dict[str, float] = {}
    for n in raw_nodes:
        raylet = n.get("raylet") or {}
        resources = {k: v for k, v in (raylet.get("resourcesTotal") or {}).items()
                     if not k.startswith("node:")}
        state = raylet.get("state") or "UNKNOWN"
        nodes.append({"ip": n.get("ip"), "hostname": n.get("hostname"), "state": state,
                      "head": bool(raylet.get("isHeadNode")), "node_id": raylet.get("nodeId"),
                      "resources": resources})
        if state == "ALIVE":
            for k, v in resources.items():
                totals[k] = totals.get(k, 0.0) + float(v)
    usage: dict[str, Any] = {}
    with contextlib.suppress(MlwsError):
        report = client.cluster_status().get("clusterStatus") or {}
        for key, pair in ((report.get("loadMetricsReport") or {}).get("usage") or {}).items():
            if not key.startswith("node:") and isinstance(pair, list) and len(pair) == 2:
                usage[key] = {"used": pair[0], "total": pair[1]}
    alive = sum(1 for n in nodes if n["state"] == "ALIVE")
    info.update(health="ok" if alive and alive == len(nodes) else
                ("degraded" if alive else "no live nodes"),
                alive_nodes=alive, nodes=nodes, resources=totals, usage=usage)
    return info


def describe_compute(compute: Any) -> dict[str, Any]:
    """Flat fields for ``mlws compute show`` of a Ray compute (the token is never shown)."""
    address = compute.spec.get("address") or (compute.spec.get("settings") or {}).get("address")
    if not address:
        return {"cluster": "no address"}
    try:
        token = token_from(dict(compute.spec.get("settings") or {}), compute.name)
    except MlwsError as exc:
        return {"cluster": str(exc)}
    info = cluster_info(str(address), token)
    if info.get("health") in ("unreachable", "refused", "invalid address"):
        return {"cluster": f"{info['health']}: {info.get('error')}"}

    def fmt(resources: dict[str, Any]) -> str:
        shown = {k: v for k, v in resources.items() if k not in ("memory", "objectStoreMemory")}
        text = ", ".join(f"{k}={float(v):g}" for k, v in sorted(shown.items()))
        if resources.get("memory"):
            text += f", memory={float(resources['memory']) / 2**30:.1f}GiB"
        return text

    out: dict[str, Any] = {
        "cluster": f"{info['health']}: Ray {info.get('ray_version')} at {info['address']}, "
                   f"{info['alive_nodes']} of {len(info['nodes'])} node(s) alive",
        "cluster_resources": fmt(info["resources"]),
    }
    for i, n in enumerate(info["nodes"]):
        out[f"node_{i}"] = (f"{n['ip']} {'head' if n['head'] else 'worker'} {n['state']}: "
                            f"{fmt(n['resources'])}")
    used = {k: v for k, v in info.get("usage", {}).items()
            if k not in ("memory", "objectStoreMemory") and v.get("used")}
    if used:
        out["cluster_in_use"] = ", ".join(f"{k}={v['used']:g}/{v['total']:g}"
                                          for k, v in sorted(used.items()))
    return out
