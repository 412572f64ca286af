"""Jobs and pipelines in one workspace that use what another workspace shared into a registry,
and Azure curated names, run for real on local compute (venvs built by the test)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from jupyter_mlws import Workspace
from tests.registries.conftest import SPECS

BASE = "mlws/base-python:3.11-bookworm"


def _share_env_and_model(ws_a: Workspace, model_dir: Path) -> None:
    ws_a.environments.create("shared-env", image=BASE, pip_requirements=["six==1.16.0"],
                             version="1")
    ws_a.models.create("shared-model", model_dir, version="1")
    ws_a.registries.share("environment", "shared-env:1", "team")
    ws_a.registries.share("model", "shared-model:1", "team")


def _create(cli: Callable[..., Result], ws: Workspace, spec: Path, code: int = 0) -> Result:
    return cli("job", "create", "-f", str(spec), "-w", str(ws.path), "--wait", "-o", "json",
               code=code)


def test_a_job_in_b_runs_with_the_env_and_model_a_shared(
        cli: Callable[..., Result], ws_a: Workspace, ws_b: Workspace, team: Path,
        model_dir: Path) -> None:
    _share_env_and_model(ws_a, model_dir)
    result = _create(cli, ws_b, SPECS / "command-shared-assets.yml")
    job = json.loads(result.stdout)
    log = ws_b.jobs.logs(job["id"])
    assert job["status"] == "Completed", log
    assert "six 1.16.0" in log and "weights v1" in log
    # lineage: where the environment came from is in the job's record and log
    lineage = ("note: environment azureml://registries/team/environments/shared-env/versions/1 "
               "from the registry 'team' runs as ")
    assert lineage in log
    assert any(n.startswith(lineage) for n in ws_b.jobs.get(job["id"]).spec["notes"])
    env = ws_b.environments.get(job["environment"])
    assert env.tags["registry_asset"].endswith("/environments/shared-env/versions/1")
    assert env.env_hash == ws_a.environments.get("shared-env:1").env_hash  # the same venv
    # the model input is the imported version, whose tags say where it came from
    model_io = next(r for r in ws_b.jobs.io(job["id"]) if r.name == "model")
    assert model_io.asset is not None
    kind, name, version = model_io.asset.split(":")
    imported = ws_b.models.get(name, version)
    assert kind == "model" and imported.tags["registry_asset"] == (
        "azureml://registries/team/models/shared-model/versions/1")


def test_a_pipeline_in_b_runs_the_component_a_shared(
        cli: Callable[..., Result], ws_a: Workspace, ws_b: Workspace, team: Path,
        model_dir: Path, tmp_path: Path) -> None:
    _share_env_and_model(ws_a, model_dir)
    source = tmp_path / "component"
    shutil.copytree(SPECS, source, ignore=shutil.ignore_patterns("*.yml"))
    shutil.copy(SPECS / "shared-greet.yml", source)
    cli("component", "create", "-f", str(source / "shared-greet.yml"), "-w", str(ws_a.path))
    shared = cli("component", "share", "shared_greet:1", "--registry", "team", "-w",
                 str(ws_a.path))
    assert "Shared as azureml://registries/team/components/shared_greet/versions/1" in \
        shared.output
    entry = json.loads((team / "components" / "shared_greet" / "1.json").read_text())
    assert entry["spec"]["environment"]["pip_requirements"] == ["six==1.16.0"]  # travels along
    shutil.rmtree(source)  # B needs nothing of A's files: the code is in the registry
    result = _create(cli, ws_b, SPECS / "pipeline-shared-component.yml")
    pipe = json.loads(result.stdout)
    assert pipe["status"] == "Completed", ws_b.jobs.logs(pipe["id"])
    step = next(j for j in ws_b.jobs.list(include_children=True) if j.parent_id == pipe["id"])
    assert "hello registry (six 1.16.0)" in ws_b.jobs.logs(step.id)


def test_azure_curated_names_run_unedited(cli: Callable[..., Result], ws_a: Workspace) -> None:
    result = _create(cli, ws_a, SPECS / "command-curated-names.yml")
    job = json.loads(result.stdout)
    log = ws_a.jobs.logs(job["id"])
    assert job["status"] == "Completed", log
    assert "hello world" in log
    assert ("environment azureml://registries/azureml/environments/"
            "minimal-ubuntu22.04-py311-cpu-inference/versions/1 from the registry 'azureml'") \
        in log


def test_a_gpu_only_environment_is_refused_before_the_job_starts(
        cli: Callable[..., Result], ws_a: Workspace) -> None:
    out = cli("job", "create", "-f", str(SPECS / "command-gpu-acpt.yml"), "-w", str(ws_a.path),
              code=1)
    assert "error: acpt-pytorch-2.2-cuda12.1 is a GPU-only Azure environment (CUDA 12.1)" \
        in out.output
    assert ws_a.jobs.list() == []
