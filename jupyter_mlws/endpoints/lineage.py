"""Lineage of deployments: which deployments serve a model, or run an environment."""

from __future__ import annotations

from typing import Any


def _matches(ref: str | None, wanted: str) -> bool:
    """``name:version`` matches ``name:version`` and ``name``."""
    if not ref:
        return False
    return ref == wanted or (":" not in wanted and ref.rsplit(":", 1)[0] == wanted)


def deployments_using(store: Any, *, model: str | None = None, environment: str | None = None,
                      env_hash: str | None = None) -> list[dict[str, Any]]:
    """The deployments (of every endpoint) whose recorded model or environment matches."""
    out = []
    for ep in store.list_endpoints():
        for dep in store.list_deployments(ep.name):
            r = dep.resolved
            hit = ((model is not None and _matches(r.get("model"), model))
                   or (environment is not None and _matches(r.get("environment"), environment))
                   or (env_hash is not None and r.get("env_hash") == env_hash))
            if hit:
                out.append({
                    "endpoint": ep.name, "deployment": dep.name,
                    "generation": dep.generation, "model": r.get("model"),
                    "environment": r.get("environment"), "env_hash": r.get("env_hash"),
                    "runtime": r.get("runtime", "process"), "image_id": r.get("image_id"),
                    "venv": r.get("venv"), "traffic": ep.traffic.get(dep.name, 0)})
    return out
