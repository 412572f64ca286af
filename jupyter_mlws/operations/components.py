"""``ws.components``: command components with typed inputs/outputs, code and an environment."""

from __future__ import annotations

from pathlib import Path

import pathspec

from jupyter_mlws.artifacts import PutSession
from jupyter_mlws.assets.component import Component, ComponentSpec
from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.errors import SpecError
from jupyter_mlws.operations.base import AssetOperations, Prepared

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

    def _prepare(self, spec: ComponentSpec, session: PutSession) -> Prepared:
        data = spec.content()
        if isinstance(spec.environment, EnvironmentSpec):
            env = self._ws.environments.register_anonymous(spec.environment)
            data["environment"] = f"mlws:{env.name}:{env.version}"
        else:
            env = self._ws.environments.get(spec.environment)
            data["environment"] = f"mlws:{env.name}:{env.version}"
        if spec.code:
            folder = Path(spec.code)
            if not folder.exists():
                raise SpecError(f"the code folder {spec.code!r} does not exist", field="code")
            ignore = code_ignore_spec(folder) if folder.is_dir() else None
            stored = self._ws.artifacts.put_path(folder, ignore=ignore, session=session)
            data.pop("code", None)
            data["source"] = str(folder.resolve())
            data["code_artifact"] = stored.to_dict()
        return Prepared(spec=data, reuse_identical_latest=True)
