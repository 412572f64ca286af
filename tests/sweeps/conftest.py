"""Sweep tests: a workspace the CLI finds, whose jobs are stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from tests.helpers import stop_jobs

SPECS = Path(__file__).parent.parent / "azure" / "specs"


@pytest.fixture
def sws(ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Workspace]:
    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    monkeypatch.chdir(tmp_path)
    yield ws
    stop_jobs(ws, timeout=60)


@pytest.fixture
def mlws(sws: Workspace) -> Callable[..., Result]:
    """``mlws ARGS...``; asserts the exit code (0 unless ``code`` is given)."""
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke
