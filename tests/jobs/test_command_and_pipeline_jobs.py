"""Command jobs and pipelines on local compute, with real processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import SpecError


def test_command_job_with_inputs_outputs_and_optional_segments(jws: Workspace,
                                                               tmp_path: Path) -> None:
    code = tmp_path / "src"
    code.mkdir()
    (code / "train.py").write_text(
        "import sys, pathlib\n"
        "args = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
        "rows = pathlib.Path(args['--data']).read_text().splitlines()\n"
        "out = pathlib.Path(args['--out'])\n"
        "(out / 'summary.txt').write_text(f\"rows={len(rows)} epochs={args['--epochs']} "
        "lr={args.get('--lr', 'none')}\")\n"
        "print('trained', flush=True)\n")
    (code / "ignored.ckpt").write_text("big")
    (code / ".mlwsignore").write_text("*.ckpt\n")
    csv = tmp_path / "d.csv"
    csv.write_text("a\n1\n2\n3\n")
    jws.data.create("rows", csv, type="uri_file")
    job = jws.jobs.submit_command(
        "python train.py --data ${{inputs.data}} --epochs ${{inputs.epochs}} "
        "$[[--lr ${{inputs.lr}}]] --out ${{outputs.model}}",
        code=code,
        inputs={"data": "azureml:rows@latest", "epochs": 3,
                "lr": {"type": "number", "optional": True}},
        outputs={"model": {"type": "uri_folder"}},
    )
    done = jws.jobs.wait(job.id, timeout=120)
    assert done.status == "Completed", jws.jobs.logs(job.id)
    out = jws.jobs.paths(job.id).outputs / "model" / "summary.txt"
    assert out.read_text() == "rows=4 epochs=3 lr=none"
    assert "--lr" not in done.spec["resolved_command"]
    assert "trained" in jws.jobs.logs(job.id)
    snapshot = jws.artifacts.manifest(done.spec["snapshot"]["sha256"])
    assert [f[0] for f in snapshot] == [".mlwsignore", "train.py"]
    assert jws.jobs.params(job.id) == {"epochs": 3}


def test_command_exit_code_and_unknown_reference(jws: Workspace) -> None:
    job = jws.jobs.wait(jws.jobs.submit_command("echo partial; exit 3").id, timeout=60)
    assert job.status == "Failed" and "exited with code 3" in (job.error or "")
    assert "partial" in jws.jobs.logs(job.id)
    with pytest.raises(SpecError, match="not declared"):
        jws.jobs.submit_command("echo ${{inputs.missing}}")


def test_azure_command_job_yaml(jws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hello.py").write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[2], 'greeting.txt').write_text(sys.argv[1])\n")
    spec = tmp_path / "job.yml"
    spec.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: python hello.py ${{inputs.greeting}} ${{outputs.out}}\n"
        "code: src\n"
        "inputs:\n  greeting: hello\n"
        "outputs:\n  out:\n    type: uri_folder\n"
        "compute: azureml:local\n"
        "experiment_name: yaml-jobs\n"
        "display_name: from yaml\n"
        "resources:\n  instance_count: 1\n")
    job = jws.jobs.create_from_file(spec)
    done = jws.jobs.wait(job.id, timeout=60)
    assert done.status == "Completed", jws.jobs.logs(job.id)
    assert done.experiment == "yaml-jobs" and done.display_name == "from yaml"
    assert (jws.jobs.paths(job.id).outputs / "out" / "greeting.txt").read_text() == "hello"


def test_concurrency_limit_of_a_compute(jws: Workspace) -> None:
    jws.computes.create("one-at-a-time", type="local", max_concurrent_jobs=1)
    jobs = [jws.jobs.submit_command("sleep 1", compute="one-at-a-time") for _ in range(3)]
    done = [jws.jobs.wait(j.id, timeout=120) for j in jobs]
    assert all(j.status == "Completed" for j in done)
    spans = sorted((j.started_at, j.ended_at) for j in done)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end  # never two at once


def test_cancel_while_queued(jws: Workspace) -> None:
    jws.computes.create("single", type="local", max_concurrent_jobs=1)
    first = jws.jobs.submit_command("sleep 30", compute="single")
    # the first holds the only slot before the second exists (slots are not handed out in order)
    deadline = time.monotonic() + 60
    while jws.jobs.get(first.id).status != "Running":
        assert time.monotonic() < deadline, "the first job never started"
        time.sleep(0.05)
    second = jws.jobs.submit_command("echo never", compute="single")
    jws.jobs.cancel(second.id)
    assert jws.jobs.wait(second.id, timeout=30).status == "Canceled"
    jws.jobs.cancel(first.id)
    assert jws.jobs.wait(first.id, timeout=30).status == "Canceled"
    assert "never" not in jws.jobs.logs(second.id)


PIPELINE = """
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
display_name: three steps
inputs:
  count: 3
jobs:
  prepare:
    command: python -c "import sys,pathlib; pathlib.Path(sys.argv[1],'n.txt').write_text('${{inputs.n}}')" ${{outputs.data}}
    inputs:
      n: ${{parent.inputs.count}}
    outputs:
      data: {type: uri_folder}
  train:
    command: python -c "import sys,pathlib; n=pathlib.Path(sys.argv[1],'n.txt').read_text(); raise SystemExit('training failed on ' + n)" ${{inputs.data}}
    inputs:
      data: ${{parent.jobs.prepare.outputs.data}}
  evaluate:
    command: echo evaluating ${{inputs.model}}
    inputs:
      model: ${{parent.jobs.train.outputs.model}}
  report:
    command: python -c "import sys,pathlib; pathlib.Path(sys.argv[1],'r.txt').write_text('independent')" ${{outputs.out}}
    outputs:
      out: {type: uri_folder}
"""


def test_pipeline_with_a_failing_step(jws: Workspace, tmp_path: Path) -> None:
    spec = tmp_path / "pipeline.yml"
    spec.write_text(PIPELINE)
    pipe = jws.jobs.create_from_file(spec)
    done = jws.jobs.wait(pipe.id, timeout=240)
    assert done.status == "Failed" and "train" in (done.error or "")
    steps = done.result["steps"]  # type: ignore[index]
    assert steps["prepare"]["status"] == "Completed"
    assert steps["train"]["status"] == "Failed"
    assert steps["evaluate"] == {"job": None, "status": "Skipped"}  # never ran
    assert steps["report"]["status"] == "Completed"
    children = {c.step_name: c for c in jws.jobs.children(pipe.id)}
    assert set(children) == {"prepare", "train", "report"}
    prepared = jws.jobs.paths(children["prepare"].id).outputs / "data" / "n.txt"
    assert prepared.read_text() == "3"
    assert "training failed on 3" in jws.jobs.logs(children["train"].id)
    report = jws.jobs.paths(children["report"].id).outputs / "out" / "r.txt"
    assert report.read_text() == "independent"  # the other branch kept its results
    assert all(c.parent_id == pipe.id for c in children.values())
    assert pipe.id in {j.id for j in jws.jobs.list()}
    assert not {c.id for c in children.values()} & {j.id for j in jws.jobs.list()}


def test_pipeline_cycle_is_refused(jws: Workspace) -> None:
    spec = {"type": "pipeline", "jobs": {
        "a": {"command": "echo", "inputs": {"x": "${{parent.jobs.b.outputs.o}}"}},
        "b": {"command": "echo", "inputs": {"x": "${{parent.jobs.a.outputs.o}}"}}}}
    with pytest.raises(SpecError, match="cycle"):
        jws.jobs.submit_pipeline(spec)


def test_pipeline_with_a_component_and_a_notebook_step(jws: Workspace, tmp_path: Path) -> None:
    from tests.helpers import make_notebook

    (tmp_path / "comp").mkdir()
    (tmp_path / "comp" / "make.py").write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[2], 'v.json').write_text(sys.argv[1])\n")
    (tmp_path / "comp.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json\n"
        "name: make-value\ntype: command\ncode: comp\n"
        "environment: azureml:MLWS-python-3.11-minimal@latest\n"
        "inputs:\n  value: {type: integer, default: 7}\n"
        "outputs:\n  out: {type: uri_folder}\n"
        "command: python make.py ${{inputs.value}} ${{outputs.out}}\n")
    jws.create_from_file(tmp_path / "comp.yml")
    make_notebook(tmp_path / "use.ipynb",
                  "import json, pathlib\nfrom jupyter_mlws import run\n"
                  "v = json.loads((pathlib.Path(src) / 'v.json').read_text())\n"
                  "run.log_metric('v', v)", parameters="src = ''")
    pipe = jws.jobs.submit_pipeline({"type": "pipeline", "jobs": {
        "make": {"component": "make-value@latest"},
        "use": {"notebook": "use.ipynb",
                "inputs": {"src": "${{parent.jobs.make.outputs.out}}"}}}},
        base_dir=tmp_path)
    # a component that names a Docker-only environment still runs locally here: the curated
    # environment has a venv identity; to keep the test fast, run the component's command on
    # the current interpreter by overriding nothing but checking the outcome.
    done = jws.jobs.wait(pipe.id, timeout=600)
    children = {c.step_name: c for c in jws.jobs.children(pipe.id)}
    assert done.status == "Completed", {n: (c.status, c.error) for n, c in children.items()}
    assert [m.value for m in jws.jobs.metrics(children["use"].id)] == [7.0]
    assert json.loads((jws.jobs.paths(children["make"].id).outputs / "out" / "v.json")
                      .read_text()) == 7


# --- issue 9, defect 6: substituted values never run as shell code ---------------------------


def test_an_input_value_cannot_inject_shell_commands(jws: Workspace, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    value = f"a;touch${{IFS}}{marker}"
    job = jws.jobs.submit_command(
        "python -c 'import sys; print(\"ARGS\", sys.argv[1:])' ${{inputs.x}} "
        "$[[${{inputs.y}}]] ${{outputs.o}}",
        inputs={"x": value, "y": f"$(touch {marker})"}, outputs={"o": {"type": "uri_folder"}})
    done = jws.jobs.wait(job.id, timeout=120)
    assert done.status == "Completed", jws.jobs.logs(job.id)
    out = str(jws.jobs.paths(job.id).outputs / "o")
    assert f"ARGS {[value, f'$(touch {marker})', out]!r}" in jws.jobs.logs(job.id)
    assert not marker.exists()


def test_a_pipeline_input_cannot_inject_shell_commands(jws: Workspace, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    value = f"x'; touch {marker}; echo '"
    pipe = jws.jobs.submit_pipeline({"type": "pipeline", "inputs": {"v": value}, "jobs": {
        "show": {"command": "echo 'got:${{inputs.n}}'", "inputs": {"n": "${{parent.inputs.v}}"}},
    }}, base_dir=tmp_path)
    done = jws.jobs.wait(pipe.id, timeout=180)
    assert done.status == "Completed", done.error
    (child,) = jws.jobs.children(pipe.id)
    assert f"got:{value}" in jws.jobs.logs(child.id)
    assert not marker.exists()


# --- issue 9, defect 12: inputs on fsspec datastores reach the job as local files ------------


def _memory_lake(files: dict[str, bytes]) -> str:
    """A bucket in fsspec's in-memory filesystem (the submitting process downloads from it)."""
    import uuid

    import fsspec

    mem = fsspec.filesystem("memory")
    bucket = f"/lake-{uuid.uuid4().hex[:8]}"
    for rel, data in files.items():
        mem.pipe(f"{bucket}/{rel}", data)
    return f"memory://{bucket}"


def test_inputs_on_an_fsspec_datastore_are_downloaded(jws: Workspace) -> None:
    url = _memory_lake({"train/a.csv": b"x\n1\n", "train/sub/b.csv": b"x\n2\n",
                        "labels.txt": b"cat dog"})
    jws.datastores.create("lake", type="fsspec", url=url)
    job = jws.jobs.submit_command(
        "cat ${{inputs.folder}}/a.csv ${{inputs.folder}}/sub/b.csv ${{inputs.file}}; "
        "echo; echo FOLDER=${{inputs.folder}}; echo FILE=${{inputs.file}}",
        inputs={"folder": {"type": "uri_folder", "path": "mlws://datastores/lake/paths/train"},
                "file": {"type": "uri_file",
                         "path": "azureml://datastores/lake/paths/labels.txt"}})
    done = jws.jobs.wait(job.id, timeout=120)
    log = jws.jobs.logs(job.id)
    assert done.status == "Completed", log
    inputs = jws.jobs.paths(job.id).inputs.resolve()
    assert "x\n1\nx\n2\ncat dog" in log
    assert f"FOLDER={inputs / 'folder'}\n" in log
    assert f"FILE={inputs / 'file' / 'labels.txt'}\n" in log
    lineage = {io.name: io for io in jws.jobs.io(job.id) if io.direction == "input"}
    assert lineage["folder"].uri == "mlws://datastores/lake/paths/train"


def test_data_assets_on_fsspec_storage_are_downloaded(jws: Workspace, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    (remote / "sets").mkdir(parents=True)
    (remote / "sets" / "rows.csv").write_text("a,b\n1,2\n")
    jws.datastores.create("disk", type="fsspec", url=f"file://{remote}")
    jws.data.create("rows", "mlws://datastores/disk/paths/sets/rows.csv", type="uri_file")
    jws.data.create("mem", _memory_lake({"d/x.txt": b"in memory"}) + "/d", type="uri_folder")
    job = jws.jobs.submit_command(
        "cat ${{inputs.rows}} ${{inputs.mem}}/x.txt; echo; echo ROWS=${{inputs.rows}}",
        inputs={"rows": "azureml:rows@latest", "mem": "azureml:mem@latest"})
    done = jws.jobs.wait(job.id, timeout=120)
    log = jws.jobs.logs(job.id)
    assert done.status == "Completed", log
    assert "a,b\n1,2\nin memory" in log
    rows = jws.jobs.paths(job.id).inputs.resolve() / "rows" / "rows.csv"
    assert f"ROWS={rows}\n" in log


def test_a_missing_or_mistyped_fsspec_input_is_refused_at_submission(jws: Workspace) -> None:
    from jupyter_mlws.errors import NotFoundError, ValidationError

    url = _memory_lake({"only/file.txt": b"1"})
    jws.datastores.create("lake2", type="fsspec", url=url)
    with pytest.raises(NotFoundError, match="does not exist"):
        jws.jobs.submit_command("cat ${{inputs.x}}",
                                inputs={"x": "mlws://datastores/lake2/paths/nope.txt"})
    with pytest.raises(ValidationError, match="uri_file, but .* is a folder"):
        jws.jobs.submit_command("cat ${{inputs.x}}", inputs={
            "x": {"type": "uri_file", "path": "mlws://datastores/lake2/paths/only"}})
    assert jws.jobs.list() == []


def test_cancel_a_running_pipeline(jws: Workspace) -> None:
    """A pipeline runs on the job template: cancel stops its running step, skips the rest."""
    from tests.jobs.test_notebook_jobs import wait_for

    pipe = jws.jobs.submit_pipeline({"type": "pipeline", "jobs": {
        "slow": {"command": "echo started; sleep 120", "outputs": {"o": {"type": "uri_folder"}}},
        "after": {"command": "echo never ${{inputs.x}}",
                  "inputs": {"x": "${{parent.jobs.slow.outputs.o}}"}}}})
    wait_for(lambda: any("started" in jws.jobs.logs(c.id) for c in jws.jobs.children(pipe.id)))
    jws.jobs.cancel(pipe.id)
    done = jws.jobs.wait(pipe.id, timeout=60)
    assert done.status == "Canceled"
    assert [e.status for e in jws.jobs.events(pipe.id)] == [
        "Queued", "Preparing", "Running", "Canceled"]
    (slow,) = jws.jobs.children(pipe.id)
    assert jws.jobs.get(slow.id).status == "Canceled"
    assert done.result == {"steps": {"slow": {"job": slow.id, "status": "Canceled"},
                                     "after": {"job": None, "status": "Canceled"}}}


def test_an_input_no_path_can_be_is_a_value_or_a_typed_error(jws: Workspace) -> None:
    """A 5,000-character value is a string (no path is that long), not an ENAMETOOLONG
    traceback; given as a path, it is a NotFoundError."""
    from jupyter_mlws.errors import NotFoundError

    long_text = "a" * 5000
    job = jws.jobs.submit_command("echo ${{inputs.x}} | wc -c", inputs={"x": long_text})
    assert jws.jobs.wait(job.id, timeout=120).status == "Completed"
    assert jws.jobs.logs(job.id).strip().endswith("5001")
    with pytest.raises(NotFoundError, match="does not exist"):
        jws.jobs.submit_command("cat ${{inputs.x}}",
                                inputs={"x": {"type": "uri_file", "path": long_text}})
