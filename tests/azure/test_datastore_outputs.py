"""Outputs that name a datastore path are written there (never silently elsewhere), and every
workspace has Azure's default datastore ``workspaceblobstore``, a folder of the workspace."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from tests.azure.conftest import SPECS
from tests.azure.test_command_yaml import run_spec


def test_workspace_init_creates_workspaceblobstore(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["workspace", "init", str(tmp_path / "proj")])
    assert result.exit_code == 0, result.output
    ws_dir = next((tmp_path / "proj").rglob("workspace.yaml")).parent
    shown = runner.invoke(main, ["datastore", "show", "workspaceblobstore", "-w", str(ws_dir),
                                 "-o", "json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["type"] == "local"
    ws = Workspace.open(ws_dir)
    try:
        root = Path(ws.datastores.root("workspaceblobstore"))
        assert root.is_dir() and root.is_relative_to(ws.path)
    finally:
        ws.close()


def test_outputs_land_at_their_datastore_paths(mlws: Callable[..., Result], cli_ws: Workspace,
                                               tmp_path: Path) -> None:
    exports = tmp_path / "exports-store"
    exports.mkdir()
    mlws("datastore", "create", "-n", "exports_store", "--path", str(exports))
    job, _ = run_spec(mlws, "command-datastore-outputs.yml")
    assert job["status"] == "Completed", cli_ws.jobs.logs(job["id"])
    job_id = job["id"]
    blob = Path(cli_ws.datastores.root("workspaceblobstore"))
    # ${{name}} is the job's name, ${{output_name}} the output's
    assert (blob / "outputs" / job_id / "model" / "weights" / "model.txt").read_text() == "w=0.5\n"
    assert json.loads((blob / "scores" / f"{job_id}.json").read_text()) == {"accuracy": 0.9}
    assert (exports / "exports" / "latest" / "export.csv").read_text().startswith("id,score")

    shown = json.loads(mlws("job", "show", job_id, "-o", "json").stdout)
    uris = {o["name"]: o["uri"] for o in shown["outputs"]}
    assert uris == {
        "model": f"azureml://datastores/workspaceblobstore/paths/outputs/{job_id}/model/",
        "scores": f"azureml://datastores/workspaceblobstore/paths/scores/{job_id}.json",
        "export": "azureml://datastores/exports_store/paths/exports/latest/",
    }
    # the datastore path reads back as data, as in Azure
    mlws("data", "create", "-n", "trained", "-t", "uri_folder",
         "-p", uris["model"])
    assert cli_ws.data.get("trained").spec["path"] == uris["model"].replace("azureml:", "mlws:")


def test_an_output_to_a_remote_datastore_is_refused(mlws: Callable[..., Result],
                                                    cli_ws: Workspace) -> None:
    mlws("datastore", "create", "-f", str(SPECS / "datastores" / "remote-blob.yml"))
    out = mlws("job", "create", "-f", str(SPECS / "command-remote-datastore-output.yml"),
               code=1).output
    assert "the output 'blob' names the datastore 'remote_blob', which is not a folder on " \
           "this machine" in out
    assert "Traceback" not in out
    assert cli_ws.jobs.list() == []


def test_an_output_to_a_missing_datastore_is_refused(mlws: Callable[..., Result],
                                                     cli_ws: Workspace) -> None:
    out = mlws("job", "create", "-f", str(SPECS / "command-missing-datastore-output.yml"),
               code=1).output
    assert "names the datastore 'nosuchstore', which does not exist" in out
    assert "mlws datastore create -n nosuchstore" in out


def test_a_pipeline_output_with_a_datastore_path_is_written_there(
        mlws: Callable[..., Result], cli_ws: Workspace) -> None:
    pipe, _ = run_spec(mlws, "pipeline-datastore-outputs.yml")
    assert pipe["status"] == "Completed", pipe.get("error")
    blob = Path(cli_ws.datastores.root("workspaceblobstore"))
    # ${{name}} in a pipeline output's path is the pipeline job's name
    written = blob / "pipelines" / pipe["id"] / "prepped" / "rows.csv"
    assert written.read_text() == "a,b\n1,2\n"
    steps = {j.display_name: j for j in cli_ws.jobs.list(include_children=True)
             if j.parent_id == pipe["id"]}
    assert "2" in cli_ws.jobs.logs(steps["count"].id)
    shown = json.loads(mlws("job", "show", steps["prep"].id, "-o", "json").stdout)
    assert {o["name"]: o["uri"] for o in shown["outputs"]}["prepped"] == (
        f"azureml://datastores/workspaceblobstore/paths/pipelines/{pipe['id']}/prepped/")
