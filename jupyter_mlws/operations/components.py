"""``ws.components``: command components with typed inputs/outputs, code and an environment."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pathspec

from jupyter_mlws.artifacts import PutSession
from jupyter_mlws.assets.component import Component, ComponentSpec
from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.assets.yaml_io import LineIndex, validate_spec
from jupyter_mlws.errors import SpecError
from jupyter_mlws.operations.base import AssetOperations, Prepared

#: Components registered by content from a pipeline's local files are hidden under this prefix.
ANONYMOUS_PREFIX = "anon_"

#: Files that never belong in a code snapshot.
ALWAYS_IGNORED = [".git/", "__pycache__/", ".ipynb_checkpoints/", ".mlws/"]


def code_ignore_spec(folder: Path) -> pathspec.PathSpec:
    """``.gitignore`` and ``.mlwsignore`` of a code folder (gitignore rules), plus the usual."""
    lines = list(ALWAYS_IGNORED)
    for name in (".gitignore", ".mlwsignore"):
        f = folder / name
        if f.is_file():
            lines.extend(f.read_text(encoding="utf-8").splitlines())
    return pathspec.PathSpec.from_lines("gitignore", lines)


class ComponentOperations(AssetOperations[ComponentSpec, Component]):
    kind = "component"
    spec_class = ComponentSpec

    def create(self, spec: ComponentSpec) -> Component:
        return self.register(spec)

    def create_from_dict(self, data: Mapping[str, Any], *, base_dir: Path | None = None,
                         source: str | None = None, index: LineIndex | None = None) -> Component:
        """Register a command component from its YAML mapping; a pipeline component is
        refused with what to do instead."""
        if data.get("type") == "pipeline":
            raise SpecError(
                "a pipeline component (type: pipeline) cannot be registered here",
                file=source, line=(index or {}).get(("type",)), field="type",
                hint="Use it from a pipeline job step (`type: pipeline`, `component: "
                "./this-file.yml`), where it runs as a nested pipeline.")
        return super().create_from_dict(data, base_dir=base_dir, source=source, index=index)

    def create_anonymous(self, data: Mapping[str, Any], *, base_dir: Path,
                         source: str = "<component>",
                         index: LineIndex | None = None) -> Component:
        """Register a pipeline's local component under a hidden name made from its content
        (its code included), so components that share a name in different pipelines never
        collide and the same content is registered once."""
        cleaned = self._prepare_yaml(self._drop_ignored(dict(data)), base_dir, source)
        probe = validate_spec(ComponentSpec, {**cleaned, "name": cleaned.get("name") or "probe"},
                              source=source, index=index)
        body = probe.content()
        for key in ("name", "version", "code", "additional_includes"):
            body.pop(key, None)
        with self._ws.artifacts.session() as session:  # the snapshot stays pinned meanwhile
            if probe.code or probe.additional_includes:
                body["code_artifact"] = self._snapshot_code(probe, session)
            digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode())
            name = ANONYMOUS_PREFIX + digest.hexdigest()[:32]
            return self.register(probe.model_copy(update={
                "name": name, "version": None,
                "display_name": probe.display_name or cleaned.get("name")}))

    def _prepare_yaml(self, data: dict[str, Any], base_dir: Path, source: str) -> dict[str, Any]:
        """Paths (``code``, ``additional_includes``, an inline environment's ``conda_file``)
        are relative to the component's file."""
        data = super()._prepare_yaml(data, base_dir, source)
        includes = data.get("additional_includes")
        if isinstance(includes, list):
            data["additional_includes"] = [
                str(base_dir / i) if isinstance(i, str) and not Path(i).is_absolute() else i
                for i in includes]
        env = data.get("environment")
        if isinstance(env, dict):
            data["environment"] = EnvironmentSpec.prepare_yaml(env, base_dir, source)
        return data

    def _snapshot_code(self, spec: ComponentSpec, session: PutSession) -> dict[str, Any]:
        from jupyter_mlws.jobs.azure_compat import with_includes

        folder = Path(spec.code) if spec.code else None
        if folder is not None and not folder.exists():
            raise SpecError(f"the code folder {spec.code!r} does not exist", field="code")
        with with_includes(folder, spec.additional_includes) as merged:
            assert merged is not None
            ignore = code_ignore_spec(merged) if merged.is_dir() else None
            return self._ws.artifacts.put_path(merged, ignore=ignore, session=session).to_dict()

    def _prepare(self, spec: ComponentSpec, session: PutSession) -> Prepared:
        data = spec.content()
        if isinstance(spec.environment, EnvironmentSpec):
            env = self._ws.environments.register_anonymous(spec.environment)
            data["environment"] = f"mlws:{env.name}:{env.version}"
        else:
            env = self._ws.environments.get(spec.environment)
            data["environment"] = f"mlws:{env.name}:{env.version}"
        if spec.code or spec.additional_includes:
            data["code_artifact"] = self._snapshot_code(spec, session)
            data.pop("code", None)
            data.pop("additional_includes", None)
            if spec.code:
                data["source"] = str(Path(spec.code).resolve())
        return Prepared(spec=data, reuse_identical_latest=True,
                        hidden=spec.name.startswith(ANONYMOUS_PREFIX))
