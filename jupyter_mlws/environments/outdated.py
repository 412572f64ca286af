"""Which environment versions were built on a base that has moved since (e.g. a patched base),
and what uses them: jobs run in them, models those jobs made, online deployments serving them."""

from __future__ import annotations

from typing import Any

from jupyter_mlws.docker_engine import engine_calls

__all__ = ["deployment_specs", "find_outdated", "redeploy_spec"]


def _current_ids(client: Any, bases: set[str]) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    with engine_calls():
        for base in bases:
            try:
                out[base] = client.api.inspect_image(base)
            except Exception:  # noqa: BLE001 - a base gone from the engine: cannot tell
                out[base] = None
    return out


def find_outdated(ws: Any, client: Any) -> list[dict[str, Any]]:
    """Every environment version whose recorded Docker build used a base image id that is no
    longer its base tag's current id, with its users."""
    envs = ws.environments
    built: list[tuple[Any, dict[str, Any]]] = []
    for name in ws.store.names("environment", include_hidden=True):
        for env in envs.list(name):
            record = ws.store.get_build(env.env_hash, "docker") or {}
            result = record.get("result") or {}
            if record.get("status") == "succeeded" and result.get("base_image") and \
                    result.get("base_image_id"):
                built.append((env, result))
    current = _current_ids(client, {str(r["base_image"]) for _e, r in built})
    deployments = _deployments_by_hash(ws)
    out = []
    for env, result in built:
        info = current.get(str(result["base_image"]))
        if info is None or info["Id"] == result["base_image_id"]:
            continue
        labels = (info.get("Config") or {}).get("Labels") or {}
        jobs = list(ws.store.jobs_using("environment", env.name, env.version))
        out.append({
            "environment": env.ref, "name": env.name, "version": env.version,
            "env_hash": env.env_hash, "image": result.get("image"),
            "image_id": result.get("image_id"), "base_image": result["base_image"],
            "built_on": result["base_image_id"], "base_now": info["Id"],
            "base_patched_at": labels.get("org.mlws.patched"),
            "jobs": jobs, "models": _models_of(ws, jobs),
            "deployments": deployments.get(env.env_hash, []),
        })
    return out


def _models_of(ws: Any, jobs: list[str]) -> list[str]:
    found: list[str] = []
    for job in jobs:
        found += [a.ref for a in ws.store.find_by_job(job) if a.kind == "model"]
    return found


def _deployments_by_hash(ws: Any) -> dict[str, list[str]]:
    """``{env hash: ["endpoint/deployment", ...]}`` of the deployments running an image."""
    out: dict[str, list[str]] = {}
    for endpoint, name, _spec, resolved in _image_deployments(ws):
        out.setdefault(str(resolved["env_hash"]), []).append(f"{endpoint}/{name}")
    return out


def _image_deployments(ws: Any) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """``(endpoint, deployment, its spec, what it resolved to)`` of every deployment whose
    replicas are containers of an environment's image (Docker runtime), from the store (no
    supervisor started). A venv-runtime deployment does not run the image, so a patched base
    does not make it outdated and a rebuilt image does not need rolling onto it."""
    store = ws.store
    if not hasattr(store, "list_endpoints"):
        return []
    return [(ep.name, d.name, dict(d.spec), dict(d.resolved or {}))
            for ep in store.list_endpoints() for d in store.list_deployments(ep.name)
            if (d.resolved or {}).get("env_hash") and (d.resolved or {}).get("runtime") == "docker"]


def deployment_specs(ws: Any, env_hash: str
                     ) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """:func:`_image_deployments` serving ``env_hash``."""
    return [d for d in _image_deployments(ws) if d[3].get("env_hash") == env_hash]


def redeploy_spec(spec: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    """The spec that rolls a deployment onto a rebuilt image and changes nothing else: the
    scoring code is the snapshot it serves (the stored spec's ``code`` is relative to a YAML
    folder that may be gone), the model and environment the registered versions it serves
    (an inline ``path`` model or environment would be registered anew)."""
    out = dict(spec)
    if out.get("code_configuration") and resolved.get("code_dir"):
        out["code_configuration"] = {**out["code_configuration"],
                                     "code": str(resolved["code_dir"])}
    if resolved.get("model"):
        out["model"] = f"azureml:{resolved['model']}"
    if resolved.get("environment"):
        out["environment"] = f"azureml:{resolved['environment']}"
    return out
