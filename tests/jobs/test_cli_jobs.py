"""`mlws job ...` as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from tests.helpers import cli_invoker, make_notebook
from tests.surface.literal_cases import CASES, NOTEBOOK_PARAMETERS, REFUSED, as_json, expected


@pytest.fixture
def run(jws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLWS_WORKSPACE", str(jws.path))
    monkeypatch.chdir(tmp_path)
    return cli_invoker(output=True)


def test_notebook_job_from_the_cli_and_lineage_both_ways(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in.txt").write_text("abc")
    run("data", "create", "-n", "letters", "-p", "in.txt", "-t", "uri_file")
    make_notebook(tmp_path / "nb.ipynb",
                  "from jupyter_mlws import run\nimport pathlib\n"
                  "n = len(pathlib.Path(src).read_text())\nrun.log_metric('n', n)\n"
                  "(run.output_path('model') / 'm.txt').write_text(str(n * lr))",
                  parameters="src = ''\nlr = 1")
    out = json.loads(run("job", "notebook", "nb.ipynb", "-p", "lr", "2", "-i", "src=mlws:letters:1",
                         "--out", "model", "--wait", "-o", "json"))
    assert out["status"] == "Completed"
    job_id = out["id"]
    run("model", "create", "-n", "m", "-p", f"mlws://jobs/{job_id}/outputs/model")
    shown = run("job", "show", job_id)
    assert "consumed:     src <- data:letters:1" in shown
    assert "produced:     model:m:1" in shown
    assert "metrics:      n=3" in shown
    model = json.loads(run("model", "show", "m", "-o", "json"))
    assert model["job_id"] == job_id
    listed = run("job", "list")
    assert job_id in listed and "Completed" in listed
    assert "[mlws] running" in run("job", "logs", job_id)
    dl = run("job", "download", job_id, "-d", "dl", "--what", "outputs").strip()
    assert (Path(dl) / "outputs" / "model" / "m.txt").read_text() == "6"


def test_failing_job_with_wait_exits_non_zero(run) -> None:  # type: ignore[no-untyped-def]
    out = run("job", "command", "echo nope; exit 2", "--wait", code=1)
    assert "Failed" in out and "exited with code 2" in out


def test_stream_prints_lines_then_the_state(run) -> None:  # type: ignore[no-untyped-def]
    out = run("job", "command", "for i in 1 2 3; do echo line $i; sleep 0.2; done", "--stream")
    assert "line 1" in out and "line 3" in out and "Completed" in out


def test_job_yaml_and_cancel_from_the_cli(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "job.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: echo started; sleep 60\n")
    out = json.loads(run("job", "create", "-f", "job.yml", "-o", "json"))
    assert out["status"] == "Queued"
    canceled = run("job", "cancel", out["id"])
    assert "Canceled" in canceled


def test_bad_parameter_is_one_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_notebook(tmp_path / "p.ipynb", "print(a)", parameters="a = 1")
    out = run("job", "notebook", "p.ipynb", "-p", "b", "2", code=1)
    assert out.startswith("error: Unknown parameter b") and "defines: a" in out


def test_parameters_have_the_types_every_surface_gives(run, jws: Workspace,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    make_notebook(tmp_path / "types.ipynb", "pass", parameters=NOTEBOOK_PARAMETERS)
    args = [a for name, (text, _v) in CASES.items() for a in ("-p", name, text)]
    out = json.loads(run("job", "notebook", "types.ipynb", *args, "-o", "json"))
    assert as_json(jws.jobs.get(out["id"]).spec["parameters"]) == expected()
    for text, words in REFUSED.items():
        err = run("job", "notebook", "types.ipynb", "-p", "p_int", text, code=1)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert all(word in err for word in words), err


def test_input_literals_are_typed_as_in_the_magics(run, jws: Workspace) -> None:  # type: ignore[no-untyped-def]
    """The issue's example: ``-i lr=-0.5`` was the string "-0.5" on the CLI."""
    out = json.loads(run("job", "command", "echo ${{inputs.lr}} ${{inputs.opt}} ${{inputs.n}}",
                         "-i", "lr=-0.5", "-i", "opt=adam", "-i", "n=3", "--wait", "-o", "json"))
    assert out["status"] == "Completed"
    assert as_json(jws.jobs.params(out["id"])) == as_json({"lr": -0.5, "opt": "adam", "n": 3})
    err = run("job", "command", "echo ${{inputs.x}}", "-i", "x=1+2j", code=1)
    assert "a complex number" in err
