"""Azure ML command jobs from ``specs/``, run unedited with ``mlws job create -f``: compute
names, every input and output type, ./outputs and ./logs, limits, https and cloud inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from jupyter_mlws import Workspace
from jupyter_mlws.errors import CloudStorageError, DownloadError
from tests.azure.conftest import SPECS


def run_spec(mlws: Callable[..., Result], name: str, *extra: str,
             code: int = 0) -> tuple[dict, str]:
    """``mlws job create -f specs/NAME --wait -o json``: the job, and what went to stderr."""
    result = mlws("job", "create", "-f", str(SPECS / name), "--wait", "-o", "json", *extra,
                  code=code)
    return json.loads(result.stdout), result.stderr


def set_compute_map(ws: Workspace, table: dict[str, str]) -> None:
    settings = ws.path / "workspace.yaml"
    data = yaml.safe_load(settings.read_text()) or {}
    data["compute_map"] = table
    settings.write_text(yaml.safe_dump(data))


def test_hello_world_runs_on_local_with_a_note(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    job, err = run_spec(mlws, "hello-world.yml")
    assert job["status"] == "Completed", cli_ws.jobs.logs(job["id"])
    assert job["compute"] == "local"
    assert job["display_name"] == "hello-world-example"
    log = mlws("job", "logs", job["id"]).output
    assert "hello world" in log
    note = ("note: compute 'cpu-cluster' does not exist here, so the job runs on 'local' "
            "(map cloud compute names with compute_map in workspace.yaml)")
    assert f"[mlws] {note}" in log
    assert note in err


def test_compute_map_sends_cloud_names_to_a_local_compute(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    mlws("compute", "create", "-n", "big", "--max-concurrent", "1")
    set_compute_map(cli_ws, {"cpu-cluster": "big"})
    job, err = run_spec(mlws, "hello-world.yml")
    assert job["status"] == "Completed" and job["compute"] == "big"
    assert "note: compute 'cpu-cluster' runs on 'big' (compute_map in workspace.yaml)" in err
    # '*' maps every other cloud name; a compute of the cloud name itself would win
    set_compute_map(cli_ws, {"*": "big"})
    job, _ = run_spec(mlws, "command-cloud-fields.yml")
    assert job["compute"] == "big"
    # --compute on the command line overrides the YAML, and must name a compute that exists
    job, err = run_spec(mlws, "hello-world.yml", "--compute", "local")
    assert job["compute"] == "local" and "note" not in err
    out = mlws("job", "create", "-f", str(SPECS / "hello-world.yml"), "--compute", "tpyo",
               code=1).output
    assert "No compute named 'tpyo'" in out


def test_compute_map_to_a_missing_compute_says_so(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    set_compute_map(cli_ws, {"cpu-cluster": "nowhere"})
    out = mlws("job", "create", "-f", str(SPECS / "hello-world.yml"), code=1).output
    assert ("compute_map in workspace.yaml maps 'cpu-cluster' to 'nowhere', which is not a "
            "compute of this workspace") in out
    assert "Traceback" not in out


def test_command_with_every_input_and_output_type(mlws, cli_ws: Workspace,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    mlws("data", "create", "-n", "iris-registered", "-p", str(SPECS / "data" / "iris.csv"),
         "-t", "uri_file")
    job, err = run_spec(mlws, "command-io.yml")
    assert job["status"] == "Completed", cli_ws.jobs.logs(job["id"])
    assert "note: compute 'gpu-cluster' does not exist here" in err
    assert job["spec"]["timeout"] == 600  # limits.timeout
    assert job["spec"]["outputs"] == {"model": "uri_folder", "metrics": "uri_file",
                                      "report": "uri_folder"}
    out = cli_ws.jobs.paths(job["id"]).outputs
    assert (out / "model" / "model.txt").read_text() == "first-run epochs=3 lr=0.01"
    assert out.joinpath("metrics").is_file()  # a uri_file output is a file
    metrics = json.loads(out.joinpath("metrics").read_text())
    assert metrics == {"rows": 4, "files": ["iris.csv", "notes.txt"], "registered": 4,
                       "shuffle": "True", "seed": None}
    assert (out / "report" / "report.md").exists()
    shown = json.loads(mlws("job", "show", job["id"], "-o", "json").stdout)
    assert {"outputs/extra.txt", "logs/user/train.log"} <= set(shown["artifacts"])
    assert {o["name"]: o["type"] for o in shown["outputs"]}["metrics"] == "uri_file"
    table = mlws("job", "show", job["id"]).output
    assert "artifacts:    " in table and "logs/user/train.log" in table
    dest = Path(mlws("job", "download", job["id"], "-d", str(tmp_path / "dl")).output.strip())
    assert (dest / "outputs" / "extra.txt").read_text() == "kept as an artifact"
    assert (dest / "logs" / "user" / "train.log").read_text() == "epoch 1 done\n"


def test_limits_timeout_is_the_job_timeout(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    job, _ = run_spec(mlws, "command-timeout.yml", code=1)
    assert job["status"] == "Failed"
    assert "timed out after 2.0 s (the job's timeout)" in job["error"]


def test_fields_with_no_local_meaning_are_accepted_with_a_warning(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    job, err = run_spec(mlws, "command-cloud-fields.yml")
    assert job["status"] == "Completed"
    for field in ("services", "distribution", "identity", "queue_settings"):
        assert f"warning: {SPECS / 'command-cloud-fields.yml'}: '{field}' means nothing on " \
               "a local compute and is ignored" in err
    assert "'resources' means nothing on a local compute and is ignored (instance_count 2: " \
           "one process runs here)" in err
    assert "unknown field" not in err
    assert "'identity' means nothing" in cli_ws.jobs.logs(job["id"])


def test_https_inputs_are_downloaded_once_per_etag(mlws, cli_ws: Workspace, web) -> None:  # type: ignore[no-untyped-def]
    base, server = web
    server.files["/data/iris.csv"] = b"a,b\n1,2\n3,4\n"
    mlws("data", "create", "-n", "iris-web", "-p", f"{base}/data/iris.csv", "-t", "uri_file")
    first, _ = run_spec(mlws, "command-web-input.yml")
    second, _ = run_spec(mlws, "command-web-input.yml")
    for job in (first, second):
        assert job["status"] == "Completed", cli_ws.jobs.logs(job["id"])
        assert "rows 3" in cli_ws.jobs.logs(job["id"])
    assert server.gets == ["/data/iris.csv"]  # the second job used the cached copy
    server.files["/data/iris.csv"] = b"a,b\n1,2\n"
    server.etag = '"v2"'
    third, _ = run_spec(mlws, "command-web-input.yml")
    assert "rows 2" in cli_ws.jobs.logs(third["id"])
    assert server.gets == ["/data/iris.csv"] * 2
    # given directly (not through a data asset), the script gets the local path too
    job = cli_ws.jobs.submit_command("cat ${{inputs.web}}",
                                  inputs={"web": {"type": "uri_file",
                                                  "path": f"{base}/data/iris.csv"}})
    done = cli_ws.jobs.wait(job.id, timeout=120)
    assert done.status == "Completed" and "1,2" in cli_ws.jobs.logs(job.id)
    assert done.spec["resolved_command"].startswith(f"cat {cli_ws.cache_dir}")
    assert [r.uri for r in cli_ws.jobs.io(job.id) if r.direction == "input"] == [
        f"{base}/data/iris.csv"]


def test_an_unreachable_https_input_is_a_typed_error(cli_ws: Workspace, web) -> None:  # type: ignore[no-untyped-def]
    base, _server = web
    with pytest.raises(DownloadError, match=r"The input 'web' could not be downloaded from "
                       r"'http://127\.0\.0\.1:\d+/missing\.csv': HTTP 404 no such file"):
        cli_ws.jobs.submit_command("cat ${{inputs.web}}",
                                inputs={"web": {"type": "uri_file",
                                                "path": f"{base}/missing.csv"}})


@pytest.mark.parametrize(("spec", "uri"), [
    ("command-wasbs.yml", "wasbs://datasets@azuremlexamples.blob.core.windows.net/titanic.csv"),
    ("command-abfss.yml", "abfss://data@mydatalake.dfs.core.windows.net/raw/"),
])
def test_cloud_storage_inputs_say_how_to_register_a_local_copy(mlws, cli_ws: Workspace,  # type: ignore[no-untyped-def]
                                                               spec: str, uri: str) -> None:
    out = mlws("job", "create", "-f", str(SPECS / spec), code=1).output
    assert f"names '{uri}': cloud storage is not reachable offline; register a local copy " \
           "with `mlws data create -n NAME -p LOCAL_PATH`" in out
    assert cli_ws.jobs.list() == []
    with pytest.raises(CloudStorageError):
        cli_ws.jobs.create_from_file(SPECS / spec)


def test_outputs_and_logs_of_a_notebook_and_of_a_code_folder_that_has_them(
        cli_ws: Workspace, tmp_path: Path) -> None:
    from tests.helpers import make_notebook

    code = tmp_path / "nbcode"
    (code / "outputs").mkdir(parents=True)
    (code / "outputs" / "old.txt").write_text("from the repo")
    make_notebook(code / "nb.ipynb", "import pathlib\n"
                  "pathlib.Path('outputs/nb.txt').write_text('from the notebook')\n"
                  "pathlib.Path('logs/nb.log').write_text('logged')")
    job = cli_ws.jobs.wait(cli_ws.jobs.submit_notebook(code / "nb.ipynb").id, timeout=180)
    assert job.status == "Completed", cli_ws.jobs.logs(job.id)
    paths = cli_ws.jobs.paths(job.id)
    assert (paths.outputs / "nb.txt").read_text() == "from the notebook"
    assert (paths.outputs / "old.txt").read_text() == "from the repo"
    assert (paths.logs / "user" / "nb.log").read_text() == "logged"


def test_additional_includes_of_a_command_job(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    job, _ = run_spec(mlws, "command-includes.yml")
    assert job["status"] == "Completed", cli_ws.jobs.logs(job["id"])
    assert "rows=3 epochs=1" in cli_ws.jobs.logs(job["id"])
    snapshot = cli_ws.artifacts.manifest(job["spec"]["snapshot"]["sha256"])
    assert "shared/helpers.py" in [f[0] for f in snapshot]
