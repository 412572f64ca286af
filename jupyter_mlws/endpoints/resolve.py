"""Turning a deployment spec into what its replicas need: a model folder laid out as Azure lays
it, a snapshot of the scoring code, and the interpreter of the environment's cached venv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from jupyter_mlws.endpoints.paths import EndpointPaths
from jupyter_mlws.endpoints.specs import DeploymentSpec, InlineModel
from jupyter_mlws.errors import SpecError, ValidationError


def _split_ref(ref: str) -> tuple[str, str | None]:
    """``azureml:name:version``, ``name:version``, ``name@latest`` -> (name, version)."""
    text = ref.removeprefix("azureml:")
    if text.startswith("//"):
        raise ValidationError(f"The reference {ref!r} points at a registry or a workspace "
                              "elsewhere; only this workspace's assets can be deployed.",
                              hint="Use name:version of an asset registered here.")
    if text.endswith("@latest"):
        return text[: -len("@latest")], None
    name, _, version = text.partition(":")
    return name, version or None


class DeploymentResolver:
    """Resolves model, environment and code of one deployment generation."""

    def __init__(self, ws: Any, paths: EndpointPaths, spec: DeploymentSpec, base_dir: Path,
                 generation: int) -> None:
        self.ws = ws
        self.paths = paths
        self.spec = spec
        self.base_dir = base_dir
        self.generation = generation

    def resolve(self, log: Any = None) -> dict[str, Any]:
        """What ``config.json`` and ``show`` need; builds the venv when it is not cached."""
        spec = self.spec
        if spec.code_configuration is None:
            raise SpecError(
                "a deployment needs code_configuration (code and scoring_script)",
                field="code_configuration",
                hint="No-code deployments of MLflow models are not supported yet: add a "
                "scoring script with init() and run(raw_data).")
        model = self._model()
        env = self._environment(log)
        code_dir = self._code()
        rs = spec.request_settings
        probe = spec.readiness_probe
        return {
            **model, **env, "code_dir": str(code_dir),
            "scoring_script": spec.code_configuration.scoring_script,
            "instance_count": spec.instance_count,
            "max_concurrent": rs.max_concurrent_requests_per_instance,
            "timeout_s": rs.request_timeout_ms / 1000,
            "ready_timeout_s": probe.initial_delay + probe.period * probe.failure_threshold,
            "env": dict(spec.environment_variables),
            "generation": self.generation,
        }

    def _model(self) -> dict[str, Any]:
        from jupyter_mlws.artifacts import StoredArtifact

        ref = self.spec.model
        root = self.paths.model_root(self.spec.name, self.generation)
        if ref is None:
            root.mkdir(parents=True, exist_ok=True)
            return {"model": None, "model_dir": str(root)}
        if isinstance(ref, InlineModel):
            path = Path(ref.path).expanduser()
            path = path if path.is_absolute() else (self.base_dir / path)
            model = self.ws.models.create(
                ref.name or f"{self.spec.endpoint_name}-{self.spec.name}", path,
                type=ref.type, version=ref.version, description=ref.description)
        else:
            name, version = _split_ref(ref)
            model = self.ws.models.get(name, version)
        art = StoredArtifact.from_dict(model.artifact)
        model_dir = root / model.name / str(model.version)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        self.ws.artifacts.materialize(art, model_dir / art.name)
        return {"model": f"{model.name}:{model.version}", "model_dir": str(model_dir)}

    def _environment(self, log: Any) -> dict[str, Any]:
        ref = self.spec.environment
        if ref is None:
            return {"environment": None, "env_hash": None, "python": sys.executable}
        envs = self.ws.environments
        if isinstance(ref, dict):
            from jupyter_mlws.assets.environment import EnvironmentSpec

            data = EnvironmentSpec.prepare_yaml(ref, self.base_dir, "<deployment environment>")
            env = envs.register_anonymous(data)
        else:
            name, version = _split_ref(ref)
            env = envs.get(name, version)
        result = envs.build(env, builder="venv", log=log)
        from jupyter_mlws.environments.venv_builder import venv_python

        return {"environment": env.ref, "env_hash": env.env_hash,
                "python": str(venv_python(Path(result.image)))}

    def _code(self) -> Path:
        cc = self.spec.code_configuration
        assert cc is not None
        src = Path(cc.code).expanduser()
        src = src if src.is_absolute() else (self.base_dir / src)
        if not src.is_dir():
            raise SpecError(f"the code folder {str(src)!r} does not exist",
                            field="code_configuration.code",
                            hint="Paths in YAML are relative to the YAML file's folder.")
        if not (src / cc.scoring_script).is_file():
            raise SpecError(f"no scoring script {cc.scoring_script!r} in {str(src)!r}",
                            field="code_configuration.scoring_script")
        dest = self.paths.code_dir(self.spec.name, self.generation)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", ".git"))
        return dest
