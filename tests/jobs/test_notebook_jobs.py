"""Notebook jobs on local compute: real papermill, real kernels, real processes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import AssetNotFoundError, MlwsError, SpecError, ValidationError

TYPES_CELL = """
import json
from jupyter_mlws import run
kinds = {k: type(v).__name__ for k, v in dict(n=n, lr=lr, name=name, layers=layers,
                                               flag=flag).items()}
run.log_param("kinds", kinds)
out = run.output_path("result")
(out / "values.json").write_text(json.dumps(dict(n=n, lr=lr, name=name, layers=layers,
                                                 flag=flag, kinds=kinds)))
for step in range(3):
    run.log_metric("loss", 1.0 / (step + 1), step=step)
"""
PARAMS = 'n = 1\nlr = 0.5\nname = "default"\nlayers = [8]\nflag = False\n'


def wait_for(pred: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def test_parameters_keep_their_types_and_metrics_come_back(jws: Workspace, notebook) -> None:
    nb = notebook(TYPES_CELL, parameters=PARAMS)
    job = jws.jobs.submit_notebook(nb, {"n": 5, "lr": 0.01, "name": "s", "layers": [64, 32],
                                        "flag": True})
    assert job.status == "Queued"
    done = jws.jobs.wait(job.id, timeout=120)
    assert done.status == "Completed", jws.jobs.logs(job.id)
    values = json.loads((jws.jobs.paths(job.id).outputs / "result" / "values.json").read_text())
    assert values["kinds"] == {"n": "int", "lr": "float", "name": "str", "layers": "list",
                               "flag": "bool"}
    assert values["layers"] == [64, 32] and values["name"] == "s"
    assert [(m.key, m.value, m.step) for m in jws.jobs.metrics(job.id)] == [
        ("loss", 1.0, 0), ("loss", 0.5, 1), ("loss", pytest.approx(1 / 3), 2)]
    assert jws.jobs.params(job.id)["kinds"]["layers"] == "list"
    out_nb = json.loads(jws.jobs.paths(job.id).notebook_out.read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in out_nb["cells"])
    assert [e.status for e in jws.jobs.events(job.id)] == [
        "Queued", "Preparing", "Running", "Completed"]
    outputs = [io for io in jws.jobs.io(job.id) if io.direction == "output"]
    assert [o.uri for o in outputs] == [f"mlws://jobs/{job.id}/outputs/result"]
    assert done.started_at and done.ended_at and done.ended_at >= done.started_at


def test_unknown_parameter_lists_the_known_ones(jws: Workspace, notebook) -> None:
    nb = notebook("print(lr)", parameters="lr = 0.1\nepochs = 3\n")
    with pytest.raises(ValidationError, match="defines: lr, epochs") as err:
        jws.jobs.submit_notebook(nb, {"learning_rate": 0.2})
    assert "learning_rate" in str(err.value)
    assert jws.jobs.list() == []
    plain = notebook("print(1)")
    with pytest.raises(ValidationError, match="no cell tagged 'parameters'"):
        jws.jobs.submit_notebook(plain, {"x": 1})


def test_a_value_of_the_wrong_type_for_a_typed_default_is_refused(jws: Workspace,
                                                                  notebook) -> None:
    """Issue 9, defect 12: an int parameter given a string (and the like) is a typed error."""
    from jupyter_mlws.errors import ParameterTypeError

    nb = notebook("print(epochs, lr, flag, name)",
                  parameters='epochs = 3\nlr = 0.1\nflag = False\nname = "x"\n'
                  'rate: float = 1\nmaybe = None\nsteps: int = 2\n')
    refused = [({"epochs": "3"}, "epochs", "int"), ({"epochs": "ten"}, "epochs", "int"),
               ({"epochs": True}, "epochs", "int"), ({"steps": 2.5}, "steps", "int"),
               ({"lr": "0.5"}, "lr", "float"), ({"lr": False}, "lr", "float"),
               ({"flag": "True"}, "flag", "bool"), ({"flag": 1}, "flag", "bool"),
               ({"rate": "fast"}, "rate", "float")]
    for params, name, expected in refused:
        with pytest.raises(ParameterTypeError) as err:
            jws.jobs.submit_notebook(nb, params)
        assert err.value.details == {"parameter": name, "expected": expected,
                                     "value": params[name]}
        assert f"{name!r}" in err.value.message and expected in err.value.message
        assert repr(params[name]) in err.value.message
    assert jws.jobs.list() == []
    # a number is fine for a number default; only an annotated int insists on an int
    ok = jws.jobs.submit_notebook(nb, {"epochs": 2.5, "lr": 1, "flag": True, "name": 7,
                                       "rate": 2, "maybe": "anything"})
    assert jws.jobs.wait(ok.id, timeout=120).status == "Completed", jws.jobs.logs(ok.id)


def test_a_file_that_is_not_a_notebook_is_refused_before_anything_runs(
        jws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        jws.jobs.submit_notebook(bad)
    other = tmp_path / "other.ipynb"
    other.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(SpecError, match="not a notebook"):
        jws.jobs.submit_notebook(other)
    assert jws.jobs.list() == []
    assert not (jws.artifacts.root / "jobs").exists() or not any(
        (jws.artifacts.root / "jobs").iterdir())


def test_unknown_environment_and_compute_list_what_exists(jws: Workspace, notebook) -> None:
    nb = notebook("print(1)")
    with pytest.raises(AssetNotFoundError, match="MLWS-python-3.11-minimal"):
        jws.jobs.submit_notebook(nb, environment="nope")
    with pytest.raises(AssetNotFoundError, match="Known computes: local"):
        jws.jobs.submit_notebook(nb, compute="gpu-cluster")


def test_sys_exit_zero_is_success_and_one_is_failure(jws: Workspace, notebook) -> None:
    ok = jws.jobs.submit_notebook(notebook("import sys\nsys.exit(0)", "raise ValueError('no')"))
    bad = jws.jobs.submit_notebook(notebook("import sys\nsys.exit(1)"))
    assert jws.jobs.wait(ok.id, timeout=120).status == "Completed"
    failed = jws.jobs.wait(bad.id, timeout=120)
    assert failed.status == "Failed" and "SystemExit" in (failed.error or "")


def test_a_failing_cell_is_reported_with_index_name_and_message(jws: Workspace, notebook) -> None:
    nb = notebook("x = 1", "print('before the error', flush=True)",
                  "raise ValueError('boom at cell two')", "print('never')",
                  parameters="p = 1")
    job = jws.jobs.wait(jws.jobs.submit_notebook(nb, {"p": 2}).id, timeout=120)
    assert job.status == "Failed"
    assert job.result and job.result["cell_index"] == 3  # the parameters cell is cell 0
    assert job.result["ename"] == "ValueError"
    assert "boom at cell two" in (job.error or "")
    assert "before the error" in jws.jobs.logs(job.id)  # logs before the failure are kept
    assert jws.jobs.paths(job.id).notebook_out.exists()


def test_a_kernelspec_from_another_machine_falls_back_to_python(jws: Workspace, notebook) -> None:
    nb = notebook("print('ran anyway')", kernel="conda-env-someone-elses-py")
    job = jws.jobs.wait(jws.jobs.submit_notebook(nb).id, timeout=120)
    assert job.status == "Completed", jws.jobs.logs(job.id)
    assert "not in this environment" in jws.jobs.logs(job.id)


def test_cancel_stops_the_kernel(jws: Workspace, notebook) -> None:
    nb = notebook("import os, time\nfrom jupyter_mlws import run\n"
                  "run.log_param('kernel_pid', os.getpid())\ntime.sleep(120)")
    job = jws.jobs.submit_notebook(nb)
    wait_for(lambda: "kernel_pid" in jws.jobs.params(job.id), timeout=90)
    kernel_pid = int(jws.jobs.params(job.id)["kernel_pid"])
    t = time.monotonic()
    jws.jobs.cancel(job.id)
    done = jws.jobs.wait(job.id, timeout=30)
    assert done.status == "Canceled" and time.monotonic() - t < 15
    wait_for(lambda: not _alive(kernel_pid), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_killed_runner_is_found_at_the_next_open(jws: Workspace, notebook) -> None:
    nb = notebook("import os, time\nfrom jupyter_mlws import run\n"
                  "run.log_param('kernel_pid', os.getpid())\ntime.sleep(120)")
    job = jws.jobs.submit_notebook(nb)
    wait_for(lambda: "kernel_pid" in jws.jobs.params(job.id), timeout=90)
    runner = jws.jobs.get(job.id).runner_pid
    assert runner
    os.kill(runner, signal.SIGKILL)
    wait_for(lambda: not _alive(runner), timeout=10)
    reopened = Workspace.open(jws.path)
    found = reopened.jobs.get(job.id)
    assert found.status == "Failed"
    assert "runner" in (found.error or "") and str(runner) in (found.error or "")
    kernel_pid = int(jws.jobs.params(job.id)["kernel_pid"])
    wait_for(lambda: not _alive(kernel_pid), timeout=10)


def test_a_dying_kernel_fails_the_job_and_keeps_the_partial_notebook(jws: Workspace,
                                                                    notebook) -> None:
    nb = notebook("print('first cell ran', flush=True)",
                  "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "print('never')")
    job = jws.jobs.wait(jws.jobs.submit_notebook(nb).id, timeout=120)
    assert job.status == "Failed"
    assert "kernel died" in (job.error or "")
    out = json.loads(jws.jobs.paths(job.id).notebook_out.read_text())
    assert any("first cell ran" in "".join(o.get("text", "")) for c in out["cells"]
               for o in c.get("outputs", []))


def test_logs_stream_while_the_job_runs(jws: Workspace, notebook) -> None:
    nb = notebook("import time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n"
                  "    time.sleep(0.7)")
    job = jws.jobs.submit_notebook(nb)
    seen: list[tuple[float, str]] = []
    for line in jws.jobs.stream(job.id, poll_s=0.1):
        if "tick" in line:
            seen.append((time.monotonic(), line))
    assert [line.split("tick ")[1][:1] for _, line in seen] == ["0", "1", "2", "3"]
    assert seen[-1][0] - seen[0][0] > 1.0  # they arrived over time, not all at the end
    assert jws.jobs.get(job.id).status == "Completed"


def test_timeout_fails_the_job(jws: Workspace, notebook) -> None:
    job = jws.jobs.submit_notebook(notebook("import time\ntime.sleep(60)"), timeout=3)
    done = jws.jobs.wait(job.id, timeout=60)
    assert done.status == "Failed" and "timed out" in (done.error or "")


def test_register_a_model_from_a_job_output_and_read_lineage_both_ways(
        jws: Workspace, notebook, tmp_path: Path) -> None:
    data_file = tmp_path / "train.csv"
    data_file.write_text("x,y\n1,2\n")
    data = jws.data.create("train-set", data_file, type="uri_file")
    nb = notebook(
        "from jupyter_mlws import run\nimport pathlib\n"
        "rows = pathlib.Path(train).read_text().splitlines()\n"
        "(run.output_path('model') / 'model.txt').write_text(f'rows={len(rows)}')",
        parameters="train = ''")
    job = jws.jobs.wait(jws.jobs.submit_notebook(
        nb, inputs={"train": f"azureml:train-set:{data.version}"},
        outputs={"model": {"type": "custom_model"}}).id, timeout=120)
    assert job.status == "Completed", jws.jobs.logs(job.id)
    model = jws.models.create("from-job", f"mlws://jobs/{job.id}/outputs/model")
    assert model.job_id == job.id
    out = jws.models.download("from-job", dest=tmp_path / "dl")
    assert (out / "model.txt").read_text() == "rows=2"
    consumed = [io for io in jws.jobs.io(job.id) if io.direction == "input"]
    assert [(io.name, io.asset) for io in consumed] == [("train", "data:train-set:1")]
    assert jws.jobs.produced(job.id) == ["model:from-job:1"]
    assert jws.store.jobs_using("data", "train-set", "1") == [job.id]
    with pytest.raises(Exception, match="no output 'nope'"):
        jws.models.create("x", f"mlws://jobs/{job.id}/outputs/nope")


def test_rerun_and_download(jws: Workspace, notebook, tmp_path: Path) -> None:
    nb = notebook("from jupyter_mlws import run\n"
                  "(run.output_path('o') / 'v.txt').write_text(str(v))", parameters="v = 1")
    first = jws.jobs.wait(jws.jobs.submit_notebook(nb, {"v": 2}).id, timeout=120)
    again = jws.jobs.wait(jws.jobs.rerun(first.id, parameters={"v": 3}).id, timeout=120)
    assert again.id != first.id and again.status == "Completed"
    target = jws.jobs.download(again.id, tmp_path / "dl")
    assert (target / "outputs" / "o" / "v.txt").read_text() == "3"
    assert (target / "notebook" / "output.ipynb").exists()
    assert (target / "logs" / "job.log").exists()


def test_a_notebook_job_runs_in_its_environments_virtualenv(jws: Workspace, notebook) -> None:
    nb = notebook("import sys, six\nfrom jupyter_mlws import run\n"
                  "run.log_param('exe', sys.executable)\nrun.log_param('six', six.__version__)")
    jws.environments.create("nb-env", pip_requirements=["ipykernel==7.4.0", "papermill==2.7.0",
                                                        "six==1.16.0"])
    job = jws.jobs.wait(jws.jobs.submit_notebook(nb, environment="nb-env").id, timeout=600)
    assert job.status == "Completed", jws.jobs.logs(job.id)
    params = jws.jobs.params(job.id)
    env = jws.environments.get("nb-env")
    assert env.env_hash in params["exe"] and params["six"] == "1.16.0"
    assert job.env_hash == env.env_hash and job.environment == "nb-env:1"


def test_an_environment_without_papermill_fails_in_preparing_with_the_fix(
        jws: Workspace, notebook) -> None:
    jws.environments.create("bare", pip_requirements=["six==1.14.0"])  # not built by any test
    nb = notebook("print(1)")
    job = jws.jobs.wait(jws.jobs.submit_notebook(nb, environment="bare").id, timeout=600)
    assert job.status == "Failed"
    assert "lacks papermill, ipykernel" in (job.error or "")
    assert "MLWS-python-3.11-minimal" in (job.error or "")
    assert [e.status for e in jws.jobs.events(job.id)] == ["Queued", "Preparing", "Failed"]
    # now that its venv exists, the next submission is refused before anything runs
    with pytest.raises(MlwsError, match="lacks papermill, ipykernel"):
        jws.jobs.submit_notebook(nb, environment="bare")
    assert len(jws.jobs.list()) == 1
