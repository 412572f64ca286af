"""Environments: a base image (or a build context, or a ready image), Docker steps, packages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jupyter_mlws.assets.base import Asset, AssetSpec, validate_path_text
from jupyter_mlws.assets.yaml_io import load_yaml, parse_yaml
from jupyter_mlws.environments.identity import (
    canonical_form,
    hash_canonical,
    image_name,
    normalize_requirements,
    split_docker_steps,
)
from jupyter_mlws.errors import SpecError

#: The base used when a definition gives packages but no image: made offline by
#: ``mlws image bootstrap`` from Debian's packages.
DEFAULT_BASE_IMAGE = "mlws/base-python:3.11-bookworm"

EnvironmentKind = Literal["managed", "context", "image"]

# Docker's image reference grammar: [registry[:port]/]path[:tag][@digest], path lowercase.
_ALNUM = r"[a-z0-9]+"
_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_HOST_PART = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
_HOST = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_IMAGE_REF = re.compile(
    rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
IMAGE_REF_MAX = 512


def validate_image_ref(value: str) -> str:
    """``value`` if it is a Docker image reference such as ``python:3.11-slim``,
    ``registry:5000/team/img:tag`` or ``img@sha256:<hex>``."""
    if len(value) > IMAGE_REF_MAX or not _IMAGE_REF.fullmatch(value):
        raise ValueError(
            f"{value[:80]!r} is not a Docker image reference: use "
            "[registry[:port]/]name[:tag][@sha256:digest], with a lowercase name"
        )
    return value


class BuildContext(BaseModel):
    """A Docker build context used as is; its files are snapshotted at registration."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, description="Folder of the build context.")
    dockerfile_path: str = "Dockerfile"
    #: Filled at registration: the stored tree and its ``[path, sha256]`` list.
    tree_sha256: str | None = None
    files: list[tuple[str, str]] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else validate_path_text(value, what="build context path")

    @field_validator("dockerfile_path")
    @classmethod
    def _dockerfile(cls, value: str) -> str:
        validate_path_text(value, what="dockerfile_path")
        p = Path(value)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError("dockerfile_path must be a path inside the build context")
        return p.as_posix()


class EnvironmentSpec(AssetSpec):
    """An environment definition, in the Azure ML CLI v2 shape plus a few fields of our own."""

    ignored_fields: ClassVar[frozenset[str]] = frozenset(
        {"os_type", "inference_config", "properties", "datastore", "intellectual_property"}
    )

    image: str | None = None
    conda_file: dict[str, Any] | None = None
    pip_requirements: list[str] | None = None
    docker_steps: list[str] = Field(default_factory=list)
    build: BuildContext | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else validate_image_ref(value)

    @field_validator("docker_steps", mode="before")
    @classmethod
    def _steps(cls, value: object) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return split_docker_steps(value)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return split_docker_steps(value)
        raise ValueError("docker_steps must be Dockerfile text or a list of instructions")

    @field_validator("pip_requirements", mode="before")
    @classmethod
    def _pip(cls, value: object) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, str):
            return [line for line in value.splitlines()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError("pip_requirements must be a list of requirements (text) or "
                         "requirements text")

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _env(cls, value: object) -> dict[str, str]:
        if value is None:
            return {}
        return env_var_mapping(value)

    @field_validator("conda_file")
    @classmethod
    def _conda(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        deps = value.get("dependencies", [])
        if deps is None:
            return value
        if not isinstance(deps, list):
            raise ValueError("the conda file's 'dependencies' must be a list")
        for dep in deps:
            if isinstance(dep, dict):
                if set(dep) != {"pip"}:
                    raise ValueError("unexpected mapping in conda dependencies: "
                                     f"{sorted(map(str, dep))}")
                pip = dep["pip"]
                if pip is not None and not (
                    isinstance(pip, list) and all(isinstance(x, str) for x in pip)
                ):
                    raise ValueError("the conda file's pip: entry must be a list of requirements")
            elif not isinstance(dep, str):
                raise ValueError("conda dependencies must be package specs (text) or a pip: list")
        return value

    @model_validator(mode="after")
    def _shape(self) -> EnvironmentSpec:
        has_packages = bool(self.conda_file or self.pip_requirements or self.docker_steps)
        if self.build is not None:
            if self.image or has_packages:
                raise ValueError(
                    "'build' is a Docker build context used as is; it cannot be combined with "
                    "'image', 'conda_file', 'pip_requirements' or 'docker_steps' "
                    "(put those in the Dockerfile)"
                )
        elif not self.image:
            if not has_packages:
                raise ValueError(
                    "an environment needs 'image', 'build', 'conda_file' or 'pip_requirements'"
                )
            self.image = DEFAULT_BASE_IMAGE
        return self

    # --- identity ------------------------------------------------------------------------------

    @property
    def kind(self) -> EnvironmentKind:
        if self.build is not None:
            return "context"
        if self.conda_file or self.pip_requirements or self.docker_steps:
            return "managed"
        return "image"

    def canonical(self) -> dict[str, Any]:
        if self.build is not None and self.build.files is None:
            raise SpecError(
                "the build context has not been read yet", hint="Register the environment first."
            )
        return canonical_form(
            image=self.image,
            context_files=self.build.files if self.build is not None else None,
            dockerfile_path=self.build.dockerfile_path if self.build is not None else None,
            docker_steps=self.docker_steps,
            conda=self.conda_file,
            pip=self.pip_requirements,
        )

    def env_hash(self) -> str:
        return hash_canonical(self.canonical())

    def image_name(self) -> str:
        return image_name(self.env_hash())

    def pip_packages(self) -> list[str]:
        """Every pip requirement: the conda file's ``pip:`` list, then ``pip_requirements``."""
        out: list[str] = []
        for dep in (self.conda_file or {}).get("dependencies", []) or []:
            if isinstance(dep, dict):
                out.extend(normalize_requirements(str(x) for x in dep.get("pip") or []))
        out.extend(normalize_requirements(self.pip_requirements or []))
        return out

    def conda_packages(self) -> list[str]:
        """Conda dependencies other than ``pip`` itself and the ``pip:`` list."""
        return [
            d.strip()
            for d in (self.conda_file or {}).get("dependencies", []) or []
            if isinstance(d, str)
        ]

    def content(self) -> dict[str, Any]:
        data = super().content()
        if "build" in data:
            data["build"].pop("path", None)
        return data

    # --- YAML ----------------------------------------------------------------------------------

    @classmethod
    def prepare_yaml(cls, data: dict[str, Any], base_dir: Path, source: str) -> dict[str, Any]:
        """Read the files a YAML spec points at (conda file, requirements, build context)."""
        data = dict(data)
        conda = data.get("conda_file")
        if isinstance(conda, str):
            path = _resolve(base_dir, conda)
            loaded, _ = load_yaml(path)
            if not isinstance(loaded, dict):
                raise SpecError("a conda file must be a mapping", file=str(path), line=1)
            data["conda_file"] = loaded
        pip = data.get("pip_requirements")
        if isinstance(pip, str) and "\n" not in pip and _exists(base_dir, pip, "file"):
            data["pip_requirements"] = _read_text(_resolve(base_dir, pip)).splitlines()
        build = data.get("build")
        if isinstance(build, dict) and isinstance(build.get("path"), str):
            path = _resolve(base_dir, build["path"])
            if not _exists(base_dir, build["path"], "dir"):
                raise SpecError(
                    f"the build context {str(path)!r} is not a folder", file=source, field="build.path"
                )
            data["build"] = {**build, "path": str(path)}
        return data


def env_var_mapping(value: object) -> dict[str, str]:
    """Environment variables: names to text (numbers and booleans written as text)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("environment_variables must be a mapping")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{str(key)[:60]!r} is not an environment variable name")
        if item is None or isinstance(item, (dict, list)):
            raise ValueError(f"environment variable {key} must be text")
        out[key] = str(item)
    return out


def inline_environment(value: object) -> object:
    """An inline definition in a component or job: an environment spec without a name."""
    if isinstance(value, dict):
        return {"name": "inline", **value}
    return value


def _exists(base_dir: Path, rel: str, kind: Literal["file", "dir"]) -> bool:
    """Whether ``rel`` names a file (or folder); False for text that cannot be a path."""
    try:
        validate_path_text(rel)
        p = _resolve(base_dir, rel)
        return p.is_file() if kind == "file" else p.is_dir()
    except (OSError, ValueError):
        return False


def _read_text(path: Path) -> str:
    from jupyter_mlws.assets.yaml_io import MAX_SPEC_BYTES

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError(f"the file is larger than {MAX_SPEC_BYTES // 1024} KiB", file=str(path))
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the file: {exc}", file=str(path)) from None


def _resolve(base_dir: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    return p if p.is_absolute() else (base_dir / p)


def parse_environment_text(text: str, fmt: str | None = None) -> dict[str, Any]:
    """Turn a conda YAML, a requirements list or a Dockerfile into spec fields.

    ``fmt`` is ``conda``, ``pip`` or ``docker``; detected when omitted.
    """
    stripped = text.strip()
    if fmt is None:
        first = next((ln.strip() for ln in stripped.splitlines() if ln.strip()), "")
        if first.upper().startswith("FROM "):
            fmt = "docker"
        elif any(ln.strip().startswith(("dependencies:", "channels:")) for ln in text.splitlines()):
            fmt = "conda"
        else:
            fmt = "pip"
    if fmt == "conda":
        data, _ = parse_yaml(text, source="<conda YAML>")
        if not isinstance(data, dict):
            raise SpecError("the conda YAML must be a mapping with 'dependencies'")
        return {"conda_file": data}
    if fmt == "pip":
        return {"pip_requirements": stripped.splitlines()}
    if fmt == "docker":
        steps = split_docker_steps(text)
        if not steps or not steps[0].upper().startswith("FROM "):
            raise SpecError("a Dockerfile must start with FROM")
        return {"image": steps[0].split(None, 1)[1].strip(), "docker_steps": steps[1:]}
    raise SpecError(f"unknown format {fmt!r}", hint="Use conda, pip or docker.")


class Environment(Asset):
    """A registered environment version."""

    def definition(self) -> EnvironmentSpec:
        return EnvironmentSpec.model_validate(
            {**self.spec, "name": self.name, "version": self.version}
        )

    #: The hash computed at registration, as the store keeps it (not shown in dumps).
    stored_hash: str | None = Field(default=None, exclude=True)

    @property
    def env_hash(self) -> str:
        return self.stored_hash or self.definition().env_hash()

    @property
    def image(self) -> str:
        return image_name(self.env_hash)

    def extra_fields(self) -> dict[str, Any]:
        return {"hash": self.env_hash, "image": self.image,
                "environment_kind": self.definition().kind}
