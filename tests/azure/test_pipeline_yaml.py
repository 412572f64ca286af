"""Azure ML pipelines from ``specs/``, run unedited: local component files, registered
components, a pipeline component, computes per step, failures and skipped steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from jupyter_mlws import Workspace
from jupyter_mlws.errors import SpecError
from tests.azure.conftest import SPECS
from tests.azure.test_command_yaml import run_spec, set_compute_map


def steps_of(ws: Workspace, pipeline_id: str) -> dict[str, dict]:
    children = ws.jobs.list(parent_id=pipeline_id)
    return {c.step_name: c.public_dict() for c in children}


def output_text(ws: Workspace, job_id: str, *parts: str) -> str:
    return ws.jobs.paths(job_id).outputs.joinpath(*parts).read_text()


def test_pipeline_of_local_component_files(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    pipe, err = run_spec(mlws, "pipeline-local.yml")
    assert pipe["status"] == "Completed", cli_ws.jobs.logs(pipe["id"])
    steps = steps_of(cli_ws, pipe["id"])
    assert set(steps) == {"prep", "train", "score"}
    assert all(s["status"] == "Completed" for s in steps.values())
    assert {s["compute"] for s in steps.values()} == {"local"} and pipe["compute"] == "local"
    assert "'resources' means nothing on a local compute" in err  # a step's cloud field
    # train imports shared/helpers.py, which only additional_includes brings in
    assert output_text(cli_ws, steps["score"]["id"], "score_output", "score.txt") == \
        "scored: rows=3 epochs=7"
    # the step output bound to ${{parent.outputs.final_model}} is the pipeline's output
    assert output_text(cli_ws, pipe["id"], "final_model", "model.txt") == "rows=3 epochs=7"
    assert "note: compute 'gpu-cluster' does not exist here" in cli_ws.jobs.logs(steps["train"]["id"])
    assert "note: compute 'cpu-cluster' does not exist here" in cli_ws.jobs.logs(steps["prep"]["id"])
    # local components are registered by content, hidden, under their display names
    assert cli_ws.components.list() == []
    anon = cli_ws.components.list(include_hidden=True)
    assert len(anon) == 3 and all(c.name.startswith("anon_") for c in anon)
    assert {c.spec.get("display_name") for c in anon} == {"Prepare data", "Train model",
                                                          "score_model"}


def test_compute_override_and_compute_map_for_pipelines(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    mlws("compute", "create", "-n", "big", "--max-concurrent", "2")
    pipe, _ = run_spec(mlws, "pipeline-local.yml", "--compute", "big")
    assert pipe["status"] == "Completed", cli_ws.jobs.logs(pipe["id"])
    assert pipe["compute"] == "big"  # what its steps used
    assert {s["compute"] for s in steps_of(cli_ws, pipe["id"]).values()} == {"big"}
    # default_compute (cpu-cluster) maps to big; train's own gpu-cluster is unknown: local
    set_compute_map(cli_ws, {"cpu-cluster": "big"})
    pipe, _ = run_spec(mlws, "pipeline-local.yml")
    steps = steps_of(cli_ws, pipe["id"])
    assert {n: s["compute"] for n, s in steps.items()} == {"prep": "big", "train": "local",
                                                           "score": "big"}
    assert pipe["compute"] == "big"  # mixed: the pipeline's default compute
    set_compute_map(cli_ws, {"cpu-cluster": "big", "gpu-cluster": "big"})
    pipe, _ = run_spec(mlws, "pipeline-local.yml")
    assert {s["compute"] for s in steps_of(cli_ws, pipe["id"]).values()} == {"big"}


def test_pipeline_of_registered_components(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    for name in ("prep.yml", "train.yml"):
        mlws("component", "create", "-f", str(SPECS / "components" / name))
    pipe, err = run_spec(mlws, "pipeline-registered.yml")
    assert pipe["status"] == "Completed", cli_ws.jobs.logs(pipe["id"])
    assert "note: compute 'serverless' does not exist here" in err
    steps = steps_of(cli_ws, pipe["id"])
    assert output_text(cli_ws, steps["train"]["id"], "model_output", "model.txt") == \
        "rows=3 epochs=5"  # the component's default
    assert sorted(cli_ws.components.names()) == ["prep_data", "train_model"]


def test_components_that_share_a_name_never_collide(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    results = {}
    for which in ("a", "b", "a"):
        pipe, _ = run_spec(mlws, f"pipeline_collide/{which}/pipeline.yml")
        assert pipe["status"] == "Completed", cli_ws.jobs.logs(pipe["id"])
        train = steps_of(cli_ws, pipe["id"])["train"]["id"]
        results.setdefault(which, []).append(output_text(cli_ws, train, "model", "model.txt"))
    assert results == {"a": ["model from pipeline a\n"] * 2, "b": ["model from pipeline b\n"]}
    assert len(cli_ws.components.list(include_hidden=True)) == 2


def test_pipeline_component_runs_as_a_nested_pipeline(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    pipe, _ = run_spec(mlws, "pipeline-nested.yml")
    assert pipe["status"] == "Completed", cli_ws.jobs.logs(pipe["id"])
    steps = steps_of(cli_ws, pipe["id"])
    assert steps["training"]["type"] == "pipeline"
    inner = steps_of(cli_ws, steps["training"]["id"])
    assert set(inner) == {"prep", "train"}
    assert output_text(cli_ws, steps["score"]["id"], "score_output", "score.txt") == \
        "scored: rows=3 epochs=4"


def test_failed_pipeline_names_the_first_failing_step_and_skips_the_rest(mlws,  # type: ignore[no-untyped-def]
                                                                       cli_ws: Workspace) -> None:
    result: Result = mlws("job", "create", "-f", str(SPECS / "pipeline-failing.yml"), "--wait",
                          code=1)
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("Job ") and ": Failed (step 'train' failed: the command exited " \
        "with code 1" in line
    assert "(last output: the training data has no label column)" in line
    assert line.endswith("; skipped: score)")
    pipe = cli_ws.jobs.list(parent_id=None)[0]
    steps = pipe.result["steps"]  # type: ignore[index]
    assert steps["prep"]["status"] == "Completed"
    assert steps["train"]["status"] == "Failed"
    assert steps["score"] == {"job": None, "status": "Skipped"}
    assert "score: skipped" in cli_ws.jobs.logs(pipe.id)


def test_component_conda_file_resolves_next_to_the_component(mlws, cli_ws: Workspace,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    out = mlws("component", "create", "-f", str(SPECS / "components" / "conda-component.yml"),
               "-o", "json").stdout
    env_ref = json.loads(out)["spec"]["environment"]
    env = cli_ws.environments.get(env_ref)
    conda = env.definition().conda_file
    assert conda is not None and "pyyaml" in yaml.safe_dump(conda)
    # and in a pipeline (anonymous registration) it resolves the same way
    comp_file = SPECS / "components" / "conda-component.yml"
    from jupyter_mlws.jobs.pipeline import _component

    data = _component(cli_ws, f"file:{comp_file}", other)
    assert data["environment"] == env_ref




def test_steps_reading_pipeline_outputs_wait_for_the_step_that_writes_them(  # type: ignore[no-untyped-def]
        mlws, cli_ws: Workspace) -> None:
    pipe, _ = run_spec(mlws, "pipeline-parent-outputs.yml")
    assert pipe["status"] == "Completed", cli_ws.jobs.logs(pipe["id"])
    assert output_text(cli_ws, pipe["id"], "pipeline_job_trained_model", "model.txt") == \
        "rows=3 epochs=5"
    assert output_text(cli_ws, pipe["id"], "pipeline_job_prepped_data", "iris.csv").startswith(
        "sepal_length")


def test_a_pipeline_component_is_not_registered_alone(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    out = mlws("component", "create", "-f",
               str(SPECS / "components" / "pipeline-component.yml"), code=1).output
    assert "pipeline-component.yml:2: field 'type': a pipeline component (type: pipeline) " \
           "cannot be registered here" in out
    assert "Use it from a pipeline job step" in out


def test_a_step_limits_timeout_is_its_cause(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    pipe, _ = run_spec(mlws, "pipeline-step-timeout.yml", code=1)
    assert pipe["error"].startswith("step 'slow' failed: timed out after 2.0 s (the job's "
                                    "timeout) (last output: waiting)")


def test_a_step_iso_timeout_is_read_as_seconds(mlws, cli_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    pipe, _ = run_spec(mlws, "pipeline-step-iso-timeout.yml", code=1)
    assert pipe["error"].startswith("step 'slow' failed: timed out after 2.0 s (the job's "
                                    "timeout)")


def test_a_step_with_a_bad_timeout_is_refused_before_anything_runs(
        cli_ws: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "pipe.yml"
    spec.write_text((SPECS / "pipeline-step-timeout.yml").read_text().replace(
        "timeout: 2", "timeout: 2 hours"))
    with pytest.raises(SpecError) as err:
        cli_ws.jobs.create_from_file(spec)
    assert "timeout" in str(err.value)
    assert cli_ws.jobs.list(include_children=True) == []
