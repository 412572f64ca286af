"""Registries without jobs: create/list/show/delete, sharing (idempotent, conflicting,
concurrent), references and their errors, the built-in ``azureml`` registry, reserved names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from jupyter_mlws import Workspace
from jupyter_mlws.assets.base import parse_registry_ref
from jupyter_mlws.errors import (
    GpuEnvironmentError,
    RegistryAssetNotFoundError,
    RegistryConflictError,
    RegistryCorruptError,
    RegistryLocationError,
    RegistryNotFoundError,
    RegistryReadOnlyError,
    ReservedNameError,
    ValidationError,
)
from jupyter_mlws.registries.config import config_file

BASE = "mlws/base-python:3.11-bookworm"


def test_create_list_show_delete_from_the_cli(cli: Callable[..., Result], ws_a: Workspace,
                                              tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    out = cli("registry", "create", "team", "--path", str(folder), "-w", str(ws_a.path))
    assert f"Created the registry team at {folder}" in out.output
    # known per user: the file is in the user's config folder, not in the workspace
    assert config_file() == Path.home() / ".config" / "mlws" / "registries.yaml"
    assert yaml.safe_load(config_file().read_text())["registries"]["team"] == {
        "location": str(folder)}
    assert yaml.safe_load((folder / "registry.yaml").read_text())["name"] == "team"
    rows = json.loads(cli("registry", "list", "-w", str(ws_a.path), "-o", "json").output)
    assert [r["name"] for r in rows] == ["azureml", "team"]
    assert rows[0]["environment"] >= 5 and rows[0]["builtin"] is True
    shown = cli("registry", "show", "azureml", "-w", str(ws_a.path)).output
    assert "sklearn-1.5" in shown and "AzureML-lightgbm-3.3" in shown
    assert "refused: GPU only" in shown
    cli("registry", "delete", "team", "-w", str(ws_a.path))
    assert "team" not in yaml.safe_load(config_file().read_text())["registries"]
    assert (folder / "registry.yaml").is_file()  # the folder is kept for other users
    again = cli("registry", "create", "team", "--path", str(folder), "-w", str(ws_a.path))
    assert "Attached the registry team" in again.output
    cli("registry", "delete", "team", "--purge", "-w", str(ws_a.path))
    assert not folder.exists()


def test_bad_locations_and_names_are_refused(ws_a: Workspace, tmp_path: Path) -> None:
    with pytest.raises(RegistryLocationError) as s3:
        ws_a.registries.create("cloud", "s3://bucket/registry")
    assert "s3:// storage" in str(s3.value) and "comes with the team workspace" in str(s3.value)
    with pytest.raises(RegistryConflictError, match="the built-in registry's name"):
        ws_a.registries.create("azureml", tmp_path / "x")
    ws_a.registries.create("team", tmp_path / "one")
    with pytest.raises(RegistryConflictError, match="already known, at"):
        ws_a.registries.create("team", tmp_path / "two")
    with pytest.raises(RegistryConflictError, match="holds the registry 'team', not 'other'"):
        ws_a.registries.create("other", tmp_path / "one")
    with pytest.raises(RegistryNotFoundError) as unknown:
        ws_a.environments.get("azureml://registries/nowhere/environments/x/labels/latest")
    assert str(unknown.value).startswith("No registry named 'nowhere' is known to this user. "
                                         "Known registries: azureml, team.")
    with pytest.raises(RegistryReadOnlyError, match="read-only"):
        ws_a.registries.delete("azureml")


def test_reference_forms_and_their_errors(ws_a: Workspace) -> None:
    ref = parse_registry_ref("azureml://registries/team/models/m/versions/3")
    assert ref is not None and (ref.registry, ref.kind, ref.name, ref.version) == (
        "team", "model", "m", "3")
    latest = parse_registry_ref("azureml://registries/team/components/c/labels/latest")
    assert latest is not None and latest.version is None and latest.kind == "component"
    curated = parse_registry_ref("azureml:AzureML-sklearn-1.5@latest", kind="environment")
    assert curated is not None and curated.registry == "azureml"
    assert parse_registry_ref("azureml:my-env:1", kind="environment") is None
    with pytest.raises(ValidationError, match="registries hold environments, models and"):
        ws_a.data.get("azureml://registries/team/data/d/versions/1")
    with pytest.raises(ValidationError, match="is a model, where a environment is expected"):
        ws_a.environments.get("azureml://registries/team/models/m/versions/1")
    with pytest.raises(ValidationError, match="Unknown label 'stable'"):
        ws_a.environments.get("azureml://registries/azureml/environments/sklearn-1.5/labels/stable")
    with pytest.raises(ValidationError, match="is not a registry reference"):
        ws_a.environments.get("azureml://registries/azureml/environments")


def test_sharing_is_idempotent_and_refuses_other_content(ws_a: Workspace, ws_b: Workspace,
                                                         team: Path, model_dir: Path) -> None:
    ws_a.models.create("shared-model", model_dir, version="1")
    first = ws_a.registries.share("model", "shared-model:1", "team")
    entry_file = team / "models" / "shared-model" / "1.json"
    before = entry_file.read_bytes()
    again = ws_a.registries.share("model", "shared-model:1", "team")
    assert again.shared_at == first.shared_at and entry_file.read_bytes() == before
    # the same bytes from another workspace are the same content: still nothing new
    ws_b.models.create("shared-model", model_dir, version="1")
    assert ws_b.registries.share("model", "shared-model", "team").shared_at == first.shared_at
    (model_dir / "weights.txt").write_text("weights v2\n")
    ws_b.models.create("shared-model", model_dir, version="2")
    with pytest.raises(RegistryConflictError) as conflict:
        ws_b.registries.share("model", "shared-model:2", "team", version="1")
    assert "already has model shared-model:1 with other content" in str(conflict.value)
    with pytest.raises(RegistryReadOnlyError, match="'azureml' is read-only"):
        ws_a.registries.share("model", "shared-model:1", "azureml")
    # every blob the entry names is in the registry, and nothing half-written is left
    blobs = json.loads(before)["blobs"]
    assert len(blobs) == 3  # two files and the folder's manifest
    assert all((team / "blobs" / b[:2] / b[2:]).is_file() for b in blobs)
    assert not list(team.rglob("*.part"))


def test_latest_is_the_last_shared_and_unknown_assets_say_what_exists(
        ws_a: Workspace, ws_b: Workspace, team: Path) -> None:
    for version, pkg in (("1", "six==1.16.0"), ("2", "six==1.17.0")):
        ws_a.environments.create("shared-env", image=BASE, pip_requirements=[pkg],
                                 version=version)
        ws_a.registries.share("environment", f"shared-env:{version}", "team")
    latest = ws_b.environments.get("azureml://registries/team/environments/shared-env/labels/latest")
    assert latest.definition().pip_requirements == ["six==1.17.0"]
    one = ws_b.environments.get("azureml://registries/team/environments/shared-env/versions/1")
    assert one.definition().pip_requirements == ["six==1.16.0"]
    with pytest.raises(RegistryAssetNotFoundError) as missing:
        ws_b.environments.get("azureml://registries/team/environments/shared-env/versions/7")
    assert str(missing.value) == ("The registry 'team' has no environment shared-env:7. "
                                  "Its versions: 1, 2; or use labels/latest.")
    with pytest.raises(RegistryAssetNotFoundError) as none:
        ws_b.models.get("azureml://registries/team/models/nope/labels/latest")
    assert "has no model nope" in str(none.value)
    assert "share one with `mlws model share NAME:VERSION --registry team`" in str(none.value)


def test_imports_are_hidden_by_content_with_their_lineage(ws_a: Workspace, ws_b: Workspace,
                                                          team: Path, model_dir: Path) -> None:
    ws_a.models.create("shared-model", model_dir, version="1")
    ws_a.registries.share("model", "shared-model:1", "team")
    uri = "azureml://registries/team/models/shared-model/versions/1"
    got = ws_b.models.get(uri)
    assert got.name.startswith("anon_") and got.hidden
    assert got.tags == {"registry": "team", "registry_asset": uri}
    assert ws_b.models.get(uri).ref == got.ref  # imported once
    assert ws_b.models.list() == []  # hidden: never collides with the user's names
    out = ws_b.models.download(got.name, got.version, ws_b.path.parent / "dl")
    assert (out / "weights.txt").read_text() == "weights v1\n"
    assert (out / "sub" / "config.json").is_file()


def test_reserved_prefixes_are_refused_with_how_to_copy(ws_a: Workspace,
                                                        cli: Callable[..., Result]) -> None:
    for name in ("AzureML-mine", "azureml-mine", "MLWS-mine", "mlws-Mine"):
        with pytest.raises(ReservedNameError) as refused:
            ws_a.environments.create(name, image=BASE)
        text = str(refused.value)
        assert "are reserved for curated environments ('MLWS-' and 'AzureML-', in any case)" \
            in text
        assert "copy it: `mlws env create --from" in text
    out = cli("env", "create", "-n", "AzureML-x", "--image", BASE, "-w", str(ws_a.path),
              code=1)
    assert "`mlws env create --from AzureML-sklearn-1.5 --name mine`" in out.output
    copied = cli("env", "create", "--from", "AzureML-sklearn-1.5", "-n", "mine", "-w",
                 str(ws_a.path), "-o", "json")
    mine = ws_a.environments.get("mine")
    curated = ws_a.environments.get("azureml:AzureML-sklearn-1.5@latest")
    assert json.loads(copied.output)["name"] == "mine"
    assert mine.env_hash == curated.env_hash  # the same image/venv


@pytest.mark.parametrize("ref,package", [
    ("azureml://registries/azureml/environments/sklearn-1.5/labels/latest", "scikit-learn==1.5.2"),
    ("azureml:AzureML-sklearn-1.5@latest", "scikit-learn==1.5.2"),
    ("azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest", "scikit-learn==1.1.3"),
    ("azureml://registries/azureml/environments/lightgbm-3.3/versions/1", "lightgbm==3.3.5"),
    ("azureml:AzureML-lightgbm-3.3:1", "lightgbm==3.3.5"),
    ("azureml:AzureML-Minimal@latest", "papermill==2.7.0"),
])
def test_curated_names_resolve_from_the_builtin_registry(ws_a: Workspace, ref: str,
                                                         package: str) -> None:
    env = ws_a.environments.get(ref)
    spec = env.definition()
    assert package in spec.pip_requirements and "ipykernel==7.4.0" in spec.pip_requirements
    assert spec.image == BASE  # Python 3.11 on Debian 12, py38 names included
    assert env.tags["registry"] == "azureml"


def test_sklearn_15_has_what_azure_lists(ws_a: Workspace) -> None:
    env = ws_a.environments.get("AzureML-sklearn-1.5")
    names = {r.split("==")[0] for r in env.definition().pip_requirements}
    assert {"scikit-learn", "pandas", "numpy", "scipy", "mlflow", "matplotlib", "joblib",
            "ipykernel", "papermill"} <= names
    # an Azure version number maps to the one local build, with a note
    v52 = ws_a.environments.get("azureml://registries/azureml/environments/sklearn-1.5/"
                                "versions/52")
    assert v52.env_hash == env.env_hash
    assert any("Azure's version 52 of sklearn-1.5" in n for n in ws_a.registries.notes_for(v52))


def test_gpu_environments_become_cpu_builds_or_are_refused(ws_a: Workspace) -> None:
    tf = ws_a.environments.get("azureml:AzureML-tensorflow-2.12-cuda11@latest")
    assert "tensorflow-cpu==2.12.1" in tf.definition().pip_requirements
    notes = ws_a.registries.notes_for(tf)
    assert ("warning: Azure's AzureML-tensorflow-2.12-cuda11 is a GPU image (CUDA 11); here it "
            "resolves to a CPU build (tensorflow-cpu 2.12.1): the job runs on the CPU.") in notes
    with pytest.raises(GpuEnvironmentError) as refused:
        ws_a.environments.get("azureml://registries/azureml/environments/"
                              "acpt-pytorch-2.2-cuda12.1/labels/latest")
    text = str(refused.value)
    assert text.startswith("acpt-pytorch-2.2-cuda12.1 is a GPU-only Azure environment "
                           "(CUDA 12.1) with no CPU equivalent here: it needs an NVIDIA GPU")
    assert "missing here: the CUDA 12.1 runtime" in text
    with pytest.raises(RegistryAssetNotFoundError, match="has no environment 'AzureML-nope'"):
        ws_a.environments.get("AzureML-nope")


def _share_in_subprocess(ws: Workspace, ref: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH"))
        if p)}
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_mlws.cli", "model", "share", ref, "--registry", "team",
         "-w", str(ws.path), "-o", "json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_concurrent_shares_do_not_corrupt_the_registry(ws_a: Workspace, ws_b: Workspace,
                                                       team: Path, model_dir: Path) -> None:
    ws_a.models.create("m", model_dir, version="1")
    (model_dir / "weights.txt").write_text("other weights\n")
    ws_b.models.create("m", model_dir, version="1")
    procs = [_share_in_subprocess(ws_a, "m:1") for _ in range(4)]
    procs += [_share_in_subprocess(ws_b, "m:1") for _ in range(2)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    ok = [json.loads(out) for code, out, _err in results if code == 0]
    refused = [err for code, _out, err in results if code != 0]
    # one content won the name and version; every sharer of it succeeded, the rest were told
    assert len(ok) + len(refused) == 6 and ok
    assert len({o["content_hash"] for o in ok}) == 1 and len({o["shared_at"] for o in ok}) == 1
    assert all("with other content" in err for err in refused)
    assert len(ok) in (2, 4) and len(refused) == 6 - len(ok)
    entry = json.loads((team / "models" / "m" / "1.json").read_text())
    assert entry["content_hash"] == ok[0]["content_hash"]
    assert not list(team.rglob("*.part"))
    got = ws_a.models.get("azureml://registries/team/models/m/versions/1")
    out = ws_a.models.download(got.name, got.version, ws_a.path.parent / "dl")
    assert (out / "weights.txt").read_text() in ("weights v1\n", "other weights\n")


def test_an_environment_with_a_build_context_travels_with_its_files(
        cli: Callable[..., Result], ws_a: Workspace, ws_b: Workspace, team: Path,
        tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE}\nCOPY extra.txt /opt/extra.txt\n")
    (context / "extra.txt").write_text("shipped with the environment\n")
    ws_a.environments.create("ctx-env", build={"path": str(context)}, version="1")
    cli("env", "share", "ctx-env:1", "--registry", "team", "-w", str(ws_a.path))
    shutil.rmtree(context)
    got = ws_b.environments.get("azureml://registries/team/environments/ctx-env/versions/1")
    assert got.env_hash == ws_a.environments.get("ctx-env:1").env_hash
    build = got.definition().build
    assert build is not None and build.files is not None
    sha = dict((rel, s) for rel, s in build.files)["extra.txt"]
    assert ws_b.artifacts.blob_path(sha).read_text() == "shipped with the environment\n"
    shown = cli("registry", "show", "team", "-w", str(ws_b.path)).output
    assert "azureml://registries/team/environments/ctx-env/versions/1" in shown
    # `show` takes a registry reference like any other
    out = cli("env", "show", "azureml://registries/team/environments/ctx-env/labels/latest",
              "-w", str(ws_b.path), "-o", "json")
    assert json.loads(out.output)["hash"] == got.env_hash


def test_env_show_takes_azure_references(cli: Callable[..., Result], ws_a: Workspace) -> None:
    for ref in ("azureml:AzureML-sklearn-1.5@latest", "AzureML-sklearn-1.5",
                "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"):
        out = json.loads(cli("env", "show", ref, "-w", str(ws_a.path), "-o", "json").output)
        assert out["tags"]["registry_asset"] == \
            "azureml://registries/azureml/environments/sklearn-1.5/versions/1"


def test_a_folder_with_other_files_and_a_broken_entry_are_refused(
        ws_a: Workspace, team: Path, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(RegistryLocationError, match="has files and is not a registry"):
        ws_a.registries.create("busy", busy)
    assert not (busy / "registry.yaml").exists()
    broken = team / "models" / "m" / "1.json"
    broken.parent.mkdir(parents=True)
    broken.write_text(json.dumps({"kind": "model", "name": "other", "version": "1",
                                  "spec": {}, "content_hash": "x", "registry": "team"}))
    with pytest.raises(RegistryCorruptError, match="has a broken entry 'models/m/1.json'"):
        ws_a.models.get("azureml://registries/team/models/m/versions/1")
