"""Downloading a version into a place that cannot be written is a typed error naming the place,
not an OSError traceback (``mlws model download m -d a-file/sub``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from jupyter_mlws.errors import ValidationError


@pytest.mark.parametrize("what", ["model.pkl", "model_dir"])
def test_download_below_a_file_is_a_typed_error(ws: Workspace, files: Path, what: str) -> None:
    ws.models.create("m", files / what)
    blocker = files / "not-a-folder.txt"
    blocker.write_text("x")
    with pytest.raises(ValidationError, match="not-a-folder.txt/sub") as info:
        ws.models.download("m", dest=blocker / "sub")
    assert "Not a directory" in str(info.value) and info.value.hint


def test_the_cli_says_it_in_one_line(ws: Workspace, files: Path) -> None:
    ws.data.create("d", files / "model.pkl", type="uri_file")
    (files / "f.txt").write_text("x")
    result = CliRunner().invoke(main, ["data", "download", "d", "-w", str(ws.path),
                                       "-d", str(files / "f.txt" / "sub")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: Cannot write") and "Traceback" not in result.output
