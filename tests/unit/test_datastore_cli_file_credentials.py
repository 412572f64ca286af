"""``mlws datastore create -f FILE --credential-env ...``: the credential options were silently
dropped (the datastore was registered without them); now the combination is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main


@pytest.mark.parametrize("option", [["--credential-env", "key=MLWS_TEST_DS_KEY"],
                                    ["--credential", "key=s3cr3tPASS"]])
def test_credentials_with_a_file_are_refused_not_dropped(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: list[str]) -> None:
    monkeypatch.setenv("MLWS_TEST_DS_KEY", "s3cr3tPASS")
    spec = tmp_path / "ds.yml"
    spec.write_text("$schema: mlws://schemas/datastore.schema.json\n"
                    "name: ds\ntype: fsspec\nurl: s3://bucket/p\n")
    result = CliRunner().invoke(main, ["datastore", "create", "-w", str(ws.path),
                                       "-f", str(spec), *option])
    assert result.exit_code == 2, result.output
    assert "credential" in result.output and "s3cr3tPASS" not in result.output
    assert sorted(ws.datastores.names()) == ["local", "workspaceblobstore"]
