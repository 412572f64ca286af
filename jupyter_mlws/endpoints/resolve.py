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

#: Where replicas run: processes in the environment's venv, or containers of its image.
PROCESS = "process"
DOCKER = "docker"
#: Tells the no-code MLflow script where the MLmodel folder is below AZUREML_MODEL_DIR.
MLFLOW_SUBPATH_VAR = "MLWS_MLFLOW_MODEL_SUBPATH"
_PROBE_FIELDS = {"initial_delay", "period", "timeout", "failure_threshold",
                 "success_threshold"}


def runtime_of(ws: Any, compute: str | None) -> str:
    """Where an endpoint's replicas run, from its ``compute``: unset or ``local`` -> processes
    in the environment's venv; ``docker`` -> containers of the environment's image; any other
    name -> the workspace compute of that name (``azureml:`` prefix allowed), by its type."""
    if compute in (None, "", "local"):
        return PROCESS
    if compute == "docker":
        return DOCKER
    name = str(compute).removeprefix("azureml:")
    kind = ws.computes.get(name).type
    if kind in ("local", "docker"):
        return PROCESS if kind == "local" else DOCKER
    raise ValidationError(f"The endpoint's compute {name!r} is a {kind} compute; endpoints "
                          "run on local (processes) or docker compute.",
                          hint="Set compute: local or compute: docker on the endpoint.")


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

    def resolve(self, log: Any = None, runtime: str = PROCESS) -> dict[str, Any]:
        """What ``config.json`` and ``show`` need; builds the venv (``runtime="process"``) or
        the image (``"docker"``) when it is not cached."""
        spec = self.spec
        if spec.code_configuration is None and not self._is_mlflow_model():
            raise SpecError(
                "a deployment needs code_configuration (code and scoring_script), unless "
                "its model is an mlflow_model (a folder with an MLmodel file)",
                field="code_configuration",
                hint="Add a scoring script with init() and run(raw_data), or deploy an "
                "MLflow model registered with type mlflow_model.")
        model = self._model()
        if spec.code_configuration is None:
            code_dir, script = self._no_code(), "score.py"
        else:
            code_dir, script = self._code(), spec.code_configuration.scoring_script
        env = self._environment(log, runtime, model)
        rs = spec.request_settings
        probe = spec.readiness_probe
        live = spec.liveness_probe
        extra_env = dict(spec.environment_variables)
        if model.get("mlflow_subpath"):
            extra_env.setdefault(MLFLOW_SUBPATH_VAR, model["mlflow_subpath"])
        return {
            **model, **env, "code_dir": str(code_dir), "scoring_script": script,
            "instance_count": spec.instance_count,
            "max_concurrent": rs.max_concurrent_requests_per_instance,
            "timeout_s": rs.request_timeout_ms / 1000,
            "ready_timeout_s": probe.initial_delay + probe.period * probe.failure_threshold,
            "probes": {"liveness": live.model_dump(include=_PROBE_FIELDS),
                       "readiness": probe.model_dump(include=_PROBE_FIELDS)},
            "instance_type": spec.instance_type,
            "env": extra_env, "generation": self.generation,
        }

    def _is_mlflow_model(self) -> bool:
        """Whether the deployment's model is an ``mlflow_model`` (checked before anything is
        registered, so a refused deployment leaves nothing behind)."""
        ref = self.spec.model
        if ref is None:
            return False
        if isinstance(ref, InlineModel):
            path = Path(ref.path).expanduser()
            path = path if path.is_absolute() else (self.base_dir / path)
            return ref.type == "mlflow_model" and (path / "MLmodel").is_file()
        name, version = _split_ref(ref)
        return bool(self.ws.models.get(name, version).type == "mlflow_model")

    def _no_code(self) -> Path:
        """The code folder of a no-code MLflow deployment: the built-in pyfunc script."""
        dest = self.paths.code_dir(self.spec.name, self.generation)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        shutil.copyfile(Path(__file__).with_name("mlflow_score.py"), dest / "score.py")
        return dest

    def _model(self) -> dict[str, Any]:
        from jupyter_mlws.artifacts import StoredArtifact

        ref = self.spec.model
        root = self.paths.model_root(self.spec.name, self.generation)
        if ref is None:
            root.mkdir(parents=True, exist_ok=True)
            return {"model": None, "model_dir": str(root), "model_type": None}
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
        out = {"model": f"{model.name}:{model.version}", "model_dir": str(model_dir),
               "model_type": model.type}
        if model.type == "mlflow_model":
            found = sorted(model_dir.rglob("MLmodel"), key=lambda p: len(p.parts))
            if found:
                out["mlflow_subpath"] = str(found[0].parent.relative_to(model_dir))
        return out

    def _environment(self, log: Any, runtime: str, model: dict[str, Any]) -> dict[str, Any]:
        ref = self.spec.environment
        envs = self.ws.environments
        if ref is None and runtime == PROCESS:
            return {"runtime": PROCESS, "environment": None, "env_hash": None,
                    "python": sys.executable}
        own = self._mlflow_conda_file(model) if ref is None else None
        if own is not None:  # Azure's no-code deployment: the environment the model was saved in
            from jupyter_mlws.assets.environment import EnvironmentSpec

            env = envs.register_anonymous(EnvironmentSpec.prepare_yaml(
                {"conda_file": own.name}, own.parent, str(own)))
        elif ref is None:
            from jupyter_mlws.compute.docker import DEFAULT_ENVIRONMENT

            env = envs.get(DEFAULT_ENVIRONMENT)
        elif isinstance(ref, dict):
            from jupyter_mlws.assets.environment import EnvironmentSpec

            data = EnvironmentSpec.prepare_yaml(ref, self.base_dir, "<deployment environment>")
            env = envs.register_anonymous(data)
        else:
            name, version = _split_ref(ref)
            env = envs.get(name, version)
        if runtime == DOCKER:
            result = envs.build(env, builder="docker", log=log)
            return {"runtime": DOCKER, "environment": env.ref, "env_hash": env.env_hash,
                    "image": result.image, "image_id": result.image_id, "python": "python3"}
        result = envs.build(env, builder="venv", log=log)
        from jupyter_mlws.environments.venv_builder import venv_python

        return {"runtime": PROCESS, "environment": env.ref, "env_hash": env.env_hash,
                "venv": result.image, "python": str(venv_python(Path(result.image)))}

    @staticmethod
    def _mlflow_conda_file(model: dict[str, Any]) -> Path | None:
        """The ``conda.yaml`` MLflow saved beside an ``mlflow_model``'s MLmodel, if any."""
        if model.get("model_type") != "mlflow_model" or model.get("mlflow_subpath") is None:
            return None
        folder = Path(model["model_dir"]) / model["mlflow_subpath"]
        found = folder / "conda.yaml"
        return found if found.is_file() and not found.is_symlink() else None

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
