"""Two workspaces of one user and a registry folder they share (the user's registries file is
in the throwaway HOME's config folder)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from tests.helpers import stop_jobs

SPECS = Path(__file__).parent.parent / "azure" / "specs" / "registry"


@pytest.fixture
def ws_a(tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace.init(tmp_path / "a")
    yield ws
    stop_jobs(ws)
    ws.close()


@pytest.fixture
def ws_b(tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace.init(tmp_path / "b")
    yield ws
    stop_jobs(ws)
    ws.close()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``mlws ARGS...`` as typed; asserts the exit code (0 unless ``code`` is given)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


@pytest.fixture
def team(ws_a: Workspace, tmp_path: Path) -> Path:
    """A registry ``team`` in a folder, known to this user."""
    folder = tmp_path / "shared" / "team-registry"
    ws_a.registries.create("team", folder, description="the team's catalogue")
    return folder


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.txt").write_text("weights v1\n")
    (folder / "sub" / "config.json").write_text("{}")
    return folder
