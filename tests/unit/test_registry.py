"""Versioned assets on a real SQLite store in a temp folder."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import (
    AssetNotFoundError,
    InvalidNameError,
    NotFoundError,
    ReservedNameError,
    SpecError,
    UnsafePathError,
    VersionConflictError,
)


def blob_count(ws: Workspace) -> int:
    return sum(1 for _ in ws.artifacts.blobs.rglob("*") if _.is_file())


def test_versions_count_up_and_latest_skips_archived(ws: Workspace, files: Path) -> None:
    versions = [ws.models.create("clf", files / "model.pkl").version for _ in range(3)]
    assert versions == ["1", "2", "3"]
    assert ws.models.get("clf").version == "3"
    assert ws.models.get("clf", label="latest").version == "3"
    assert ws.models.get("clf@latest").version == "3"
    assert ws.models.get("azureml:clf:2").version == "2"
    ws.models.archive("clf", "3")
    assert ws.models.get("clf", label="latest").version == "2"
    assert [m.version for m in ws.models.list("clf")] == ["2", "1"]
    assert [m.version for m in ws.models.list("clf", include_archived=True)] == ["3", "2", "1"]
    assert ws.models.get("clf", "3").archived  # still reachable by version
    ws.models.restore("clf", "3")
    assert ws.models.get("clf").version == "3"


def test_archive_every_version(ws: Workspace, files: Path) -> None:
    ws.models.create("m", files / "model.pkl")
    ws.models.create("m", files / "model.pkl")
    assert ws.models.archive("m") == 2
    with pytest.raises(AssetNotFoundError, match="archived"):
        ws.models.get("m")
    assert "m" not in [m.name for m in ws.models.list()]


def test_explicit_versions_and_next_integer(ws: Workspace, files: Path) -> None:
    assert ws.models.create("m", files / "model.pkl", version="v1-beta").version == "v1-beta"
    assert ws.models.create("m", files / "model.pkl", version=5).version == "5"
    assert ws.models.create("m", files / "model.pkl").version == "6"
    assert ws.models.get("m").version == "6"


def test_same_version_same_content_is_idempotent(ws: Workspace, files: Path) -> None:
    a = ws.models.create("m", files / "model.pkl", version="1")
    b = ws.models.create("m", files / "model.pkl", version="1", description="again")
    assert (a.version, a.created_at) == (b.version, b.created_at)
    assert ws.models.count("m") == 1


def test_same_version_other_content_is_a_conflict_and_leaves_nothing(
    ws: Workspace, files: Path, tmp_path: Path
) -> None:
    ws.models.create("m", files / "model.pkl", version="1")
    other = tmp_path / "other.pkl"
    other.write_bytes(b"other weights")
    before = blob_count(ws)
    with pytest.raises(VersionConflictError, match="already exists"):
        ws.models.create("m", other, version="1")
    assert blob_count(ws) == before  # the new blob was taken back
    assert ws.models.count("m") == 1


def test_same_bytes_stored_once(ws: Workspace, files: Path, tmp_path: Path) -> None:
    ws.models.create("a", files / "model.pkl")
    n = blob_count(ws)
    copy = tmp_path / "copy.pkl"
    copy.write_bytes((files / "model.pkl").read_bytes())
    m = ws.models.create("b", copy)
    assert blob_count(ws) == n
    assert m.sha256 == ws.models.get("a").sha256
    assert m.size == len(b"weights-1")


def test_folder_model_download_round_trip(ws: Workspace, files: Path, tmp_path: Path) -> None:
    m = ws.models.create("folder", files / "model_dir")
    assert m.artifact["kind"] == "folder" and m.artifact["file_count"] == 2
    out = ws.models.download("folder", "1", tmp_path / "dl")
    assert (out / "a.txt").read_text() == "a"
    assert (out / "sub" / "b.txt").read_text() == "b"
    ws.models.create("file", files / "model.pkl")
    f = ws.models.download("file", dest=tmp_path / "dl3")
    assert f.read_bytes() == b"weights-1" and f.name == "model.pkl"


def test_mlflow_model_needs_mlmodel(ws: Workspace, files: Path) -> None:
    assert ws.models.create("ok", files / "mlflow_model", type="mlflow_model").type == "mlflow_model"
    with pytest.raises(SpecError, match="MLmodel"):
        ws.models.create("bad", files / "model_dir", type="mlflow_model")
    with pytest.raises(AssetNotFoundError):
        ws.models.get("bad")


def test_model_type_is_checked(ws: Workspace, files: Path) -> None:
    with pytest.raises(SpecError, match="type"):
        ws.models.create("x", files / "model.pkl", type="pytorch")


def test_missing_path_is_a_clear_error(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        ws.models.create("x", tmp_path / "nope.pkl")


@pytest.mark.parametrize("bad", ["../evil", "a/b", "", "a..b", "x" * 300, ".hidden", "a b"])
def test_names_are_validated(ws: Workspace, files: Path, bad: str) -> None:
    with pytest.raises((InvalidNameError, SpecError)):
        ws.models.create(bad, files / "model.pkl")


def test_symlink_out_of_a_folder_is_refused(ws: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"1")
    (folder / "leak.txt").symlink_to(secret)
    with pytest.raises(UnsafePathError, match="outside"):
        ws.models.create("m", folder)
    assert ws.models.count("m") == 0
    # a link that stays inside the folder is fine
    (folder / "leak.txt").unlink()
    (folder / "alias.bin").symlink_to(folder / "w.bin")
    assert ws.models.create("m", folder).artifact["file_count"] == 2


def test_tags_and_description_are_mutable_content_is_not(ws: Workspace, files: Path) -> None:
    m = ws.models.create("m", files / "model.pkl", tags={"stage": "dev", "team": "a"})
    updated = ws.models.update("m", "1", description="best", tags={"stage": "prod"},
                               remove_tags=["team"])
    assert updated.tags == {"stage": "prod"} and updated.description == "best"
    assert updated.content_hash == m.content_hash
    assert [x.name for x in ws.models.list(tags={"stage": "prod"})] == ["m"]
    assert ws.models.list(tags={"stage": "dev"}) == []
    assert [x.name for x in ws.models.list(tags={"stage": None})] == ["m"]


def test_list_without_name_gives_latest_of_each(ws: Workspace, files: Path) -> None:
    for name in ("b", "a", "b"):
        ws.models.create(name, files / "model.pkl")
    assert [(m.name, m.version) for m in ws.models.list()] == [("a", "1"), ("b", "2")]
    assert [m.version for m in ws.models.list("b", limit=1)] == ["2"]
    assert [m.version for m in ws.models.list("b", limit=1, offset=1)] == ["1"]


def test_unknown_names_list_known_ones(ws: Workspace, files: Path) -> None:
    ws.models.create("alpha", files / "model.pkl")
    with pytest.raises(AssetNotFoundError, match="alpha"):
        ws.models.get("beta")
    with pytest.raises(AssetNotFoundError, match="Known versions"):
        ws.models.get("alpha", "9")


# --- data ---------------------------------------------------------------------------------------


def test_data_kinds(ws: Workspace, files: Path, tmp_path: Path) -> None:
    f = ws.data.create("f", files / "model.pkl", type="uri_file")
    assert f.public_dict()["stored"] is True
    d = ws.data.create("d", files / "model_dir", type="uri_folder")
    assert d.spec["artifact"]["file_count"] == 2
    ref = ws.data.create("web", "https://example.org/data.csv", type="uri_file")
    assert ref.uri == "https://example.org/data.csv" and "artifact" not in ref.spec
    ds = ws.data.create("ds", "mlws://datastores/local/paths/raw/x.csv", type="uri_file")
    assert ds.uri == "mlws://datastores/local/paths/raw/x.csv"
    az = ws.data.create("az", "azureml://datastores/local/paths/raw", type="uri_folder")
    assert az.uri == "mlws://datastores/local/paths/raw"
    local_ref = ws.data.create("lr", f"file://{files / 'model_dir'}", type="uri_folder")
    assert "artifact" not in local_ref.spec
    with pytest.raises(SpecError, match="uri_file must be a file"):
        ws.data.create("bad", files / "model_dir", type="uri_file")
    with pytest.raises(SpecError, match="MLTable"):
        ws.data.create("bad", files / "model_dir", type="mltable")
    (files / "model_dir" / "MLTable").write_text("paths: []\n")
    assert ws.data.create("tbl", files / "model_dir", type="mltable").type == "mltable"
    with pytest.raises(AssetNotFoundError, match="datastore"):
        ws.data.create("x", "mlws://datastores/nope/paths/a", type="uri_file")
    with pytest.raises(UnsafePathError):
        ws.data.create("x", "mlws://datastores/local/paths/../../etc/passwd", type="uri_file")
    out = ws.data.download("d", dest=tmp_path / "out")
    assert (out / "sub" / "b.txt").read_text() == "b"


# --- datastores ---------------------------------------------------------------------------------


def test_local_datastore_exists_and_points_at_artifacts(ws: Workspace) -> None:
    assert ws.datastores.get("local").type == "local"
    assert Path(ws.datastores.root("local")) == ws.artifacts.root.resolve()


def test_credentials_are_kept_apart_and_never_shown(ws: Workspace, capsys: object) -> None:
    ds = ws.datastores.create("lake", type="fsspec", url="s3://bucket/prefix",
                              credentials={"key": "AKIA-SECRET", "secret": "TOPSECRET"})
    text = json.dumps(ds.public_dict()) + repr(ds) + str(ds.spec)
    assert "AKIA-SECRET" not in text and "TOPSECRET" not in text
    assert ds.public_dict()["credentials"] == {"key": "***", "secret": "***"}
    assert ws.datastores.credentials("lake") == {"key": "AKIA-SECRET", "secret": "TOPSECRET"}
    db = sqlite3.connect(ws.path / "mlws.db")
    specs = " ".join(r[0] for r in db.execute("select spec from asset_versions"))
    assert "TOPSECRET" not in specs
    assert db.execute("select count(*) from asset_secrets").fetchone()[0] == 1
    # a credential in storage_options is refused, so it cannot leak into the spec
    with pytest.raises(SpecError, match="credential"):
        ws.datastores.create("leaky", type="fsspec", url="s3://b",
                             storage_options={"secret_key": "x"})


# --- environments ---------------------------------------------------------------------------------


def test_identical_environment_is_reused_and_renaming_keeps_the_hash(ws: Workspace) -> None:
    a = ws.environments.create("e", image="base", pip_requirements=["six==1.16.0"])
    again = ws.environments.create("e", image="base", pip_requirements=["six==1.16.0"])
    assert again.version == a.version == "1"
    renamed = ws.environments.create("f", image="base", pip_requirements=["six==1.16.0"])
    assert renamed.env_hash == a.env_hash
    changed = ws.environments.create("e", image="base", pip_requirements=["six==1.17.0"])
    assert changed.version == "2" and changed.env_hash != a.env_hash


def test_reserved_prefix_is_refused_and_copy_works(ws: Workspace) -> None:
    for name in ("MLWS-mine", "mlws-mine", "Mlws-x"):
        with pytest.raises(ReservedNameError, match="--from MLWS-"):
            ws.environments.create(name, image="base")
    curated = ws.environments.get("MLWS-python-3.11-minimal")
    assert curated.curated
    mine = ws.environments.create("mine", from_="MLWS-python-3.11-minimal")
    assert mine.env_hash == curated.env_hash and not mine.curated


def test_anonymous_environments(ws: Workspace) -> None:
    anon = ws.environments.register_anonymous({"image": "base", "pip_requirements": ["six"]})
    assert anon.hidden and anon.name.startswith("anon_")
    assert anon.name not in [e.name for e in ws.environments.list()]
    assert anon.name in [e.name for e in ws.environments.list(include_hidden=True)]
    assert ws.environments.get_by_hash(anon.env_hash).name == anon.name
    assert ws.environments.get_by_hash(anon.env_hash[:12]).name == anon.name
    again = ws.environments.register_anonymous({"image": "base", "pip_requirements": ["six"]})
    assert (again.name, again.version) == (anon.name, anon.version)


def test_environment_diff(ws: Workspace) -> None:
    ws.environments.create("e", image="b", pip_requirements=["numpy==1.26", "six"])
    ws.environments.create("e", image="b", pip_requirements=["numpy==1.27", "idna"],
                           environment_variables={"A": "1"})
    ws.environments.create("e", image="b", pip_requirements=["numpy==1.27", "idna"],
                           environment_variables={"A": "2"})
    d = ws.environments.diff("e", 1, 2)
    assert d["hash_changed"] is True
    assert d["pip"]["added"] == ["idna"] and d["pip"]["removed"] == ["six"]
    assert d["pip"]["changed"] == [{"from": "numpy==1.26", "to": "numpy==1.27"}]
    same = ws.environments.diff("e", 2, 3)
    assert same["hash_changed"] is False
    assert same["changes"] == [{"field": "environment_variables", "from": {"A": "1"},
                                "to": {"A": "2"}}]


def test_environment_text_formats(ws: Workspace) -> None:
    conda = ws.environments.create_from_text(
        "c", "channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip:\n    - six\n")
    assert conda.definition().conda_file is not None
    pip = ws.environments.create_from_text("p", "six==1.16.0\nidna\n")
    assert pip.definition().pip_requirements == ["six==1.16.0", "idna"]
    docker = ws.environments.create_from_text("d", "FROM base:1\nRUN echo hi\n")
    assert docker.definition().image == "base:1"
    assert docker.definition().docker_steps == ["RUN echo hi"]


# --- components -------------------------------------------------------------------------------------


def test_component_with_code_and_inline_environment(ws: Workspace, tmp_path: Path) -> None:
    from jupyter_mlws.assets.component import ComponentSpec, resolve_command

    code = tmp_path / "src"
    code.mkdir()
    (code / "train.py").write_text("print('train')\n")
    (code / "big.ckpt").write_text("ignored\n")
    (code / ".gitignore").write_text("*.ckpt\n")
    spec = ComponentSpec.model_validate({
        "name": "train", "code": str(code), "environment": {"image": "b",
                                                            "pip_requirements": ["six"]},
        "command": "python train.py --data ${{inputs.data}} $[[--lr ${{inputs.lr}}]] "
                   "--out ${{outputs.model}}",
        "inputs": {"data": {"type": "uri_folder"},
                   "lr": {"type": "number", "optional": True}},
        "outputs": {"model": {"type": "uri_folder"}},
    })
    comp = ws.components.create(spec)
    assert comp.spec["environment"].startswith("mlws:anon_")
    manifest = ws.artifacts.manifest(comp.spec["code_artifact"]["sha256"])
    assert [m[0] for m in manifest] == [".gitignore", "train.py"]
    cmd = comp.spec["command"]
    assert resolve_command(cmd, {"data": "/d", "lr": None}, {"model": "/o"}) == (
        "python train.py --data /d  --out /o")
    assert resolve_command(cmd, {"data": "/d", "lr": 0.1}, {"model": "/o"}) == (
        "python train.py --data /d --lr 0.1 --out /o")


def test_component_command_checks(ws: Workspace) -> None:
    base = {"name": "c", "environment": "MLWS-python-3.11-minimal", "command": "x"}
    from jupyter_mlws.assets.component import ComponentSpec

    with pytest.raises(ValueError, match="not declared"):
        ComponentSpec.model_validate({**base, "command": "run ${{inputs.nope}}"})
    with pytest.raises(ValueError, match=r"\$\[\["):
        ComponentSpec.model_validate({**base, "command": "run ${{inputs.o}}",
                                      "inputs": {"o": {"type": "string", "optional": True}}})
    with pytest.raises(AssetNotFoundError, match="MLWS-python-3.11-minimal"):
        ws.components.create(ComponentSpec.model_validate({**base, "environment": "azureml:nope:1"}))


# --- YAML ---------------------------------------------------------------------------------------------


def test_yaml_errors_carry_file_and_line(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "model.yml"
    bad.write_text("$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
                   "name: m\n"
                   "path: w.bin\n"
                   "typo_field: 1\n")
    (tmp_path / "w.bin").write_bytes(b"1")
    with pytest.raises(SpecError) as err:
        ws.create_from_file(bad)
    assert err.value.line == 4 and err.value.field == "typo_field"
    assert f"{bad}:4" in str(err.value)
    broken = tmp_path / "broken.yml"
    broken.write_text("name: m\npath: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML") as err2:
        ws.create_from_file(broken, kind="model")
    assert err2.value.line is not None and err2.value.line >= 2


def test_azure_yaml_shapes(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "conda.yml").write_text(
        "name: train\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n"
        "  - pip:\n    - six==1.16.0\n")
    env_yml = tmp_path / "env" / "env.yml"
    env_yml.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
        "name: train-env\nimage: mlws/base-python:3.11-bookworm\nconda_file: conda.yml\n"
        "os_type: linux\ndescription: from Azure\n")
    env = ws.create_from_file(env_yml)
    assert env.kind == "environment" and env.spec["conda_file"]["channels"] == ["conda-forge"]
    (tmp_path / "w.bin").write_bytes(b"weights")
    model_yml = tmp_path / "model.yml"
    model_yml.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
        "name: m\nversion: 3\npath: w.bin\ntype: custom_model\ntags: {a: 1}\n")
    m = ws.create_from_file(model_yml)
    assert (m.name, m.version, m.tags) == ("m", "3", {"a": "1"})
    comp_yml = tmp_path / "comp.yml"
    comp_yml.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json\n"
        "name: prep\ndisplay_name: Prep\nversion: 1\ntype: command\n"
        "inputs:\n  raw: {type: uri_folder}\n  n: {type: integer, default: 3}\n"
        "outputs:\n  out: {type: uri_folder}\n"
        "code: env\nenvironment: azureml:train-env@latest\n"
        "command: python prep.py ${{inputs.raw}} ${{inputs.n}} ${{outputs.out}}\n")
    c = ws.create_from_file(comp_yml)
    assert c.spec["environment"] == "mlws:train-env:1"
    job_yml = tmp_path / "job.yml"
    job_yml.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: echo hi\nenvironment: azureml:train-env@latest\ncompute: azureml:local\n")
    job = ws.create_from_file(job_yml)  # a job spec is submitted
    assert ws.jobs.wait(job.id, timeout=120).status == "Completed"  # type: ignore[attr-defined]
    with pytest.raises(SpecError, match="describes a model"):
        ws.create_from_file(model_yml, kind="data")


def test_schemas_are_published(tmp_path: Path) -> None:
    from jupyter_mlws.assets.schemas import SCHEMAS, write_schemas

    written = write_schemas(tmp_path)
    assert len(written) == len(SCHEMAS)
    env = json.loads((tmp_path / "environment.schema.json").read_text())
    assert "conda_file" in env["properties"] and "name" in env["required"]


def test_failed_registration_leaves_no_version_and_no_blob(ws: Workspace, files: Path) -> None:
    """A store failure after the bytes were copied takes the bytes back."""
    from jupyter_mlws.errors import StoreError
    from jupyter_mlws.store.sql import SqlStore

    class FailingStore(SqlStore):
        def create_version(self, new):  # type: ignore[no-untyped-def]
            raise StoreError("disk full")

    before = blob_count(ws)
    failing = Workspace(ws.path, ws.settings, FailingStore(ws.store.uri))  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match="disk full"):
        failing.models.create("m", files / "model_dir")
    assert blob_count(ws) == before
    assert ws.models.count("m") == 0
    assert not list(ws.artifacts.tmp.iterdir())


def test_rollback_takes_back_only_blobs_nothing_else_uses(ws: Workspace, tmp_path: Path) -> None:
    """A session's own blob that a version committed meanwhile stays; an unused one goes."""
    shared = tmp_path / "shared.bin"
    shared.write_bytes(b"the same bytes in two registrations")
    alone = tmp_path / "alone.bin"
    alone.write_bytes(b"only the failed registration had these")
    with ws.artifacts.session() as session:
        kept = ws.artifacts.put_path(shared, session=session)
        gone = ws.artifacts.put_path(alone, session=session)
        ws.models.create("other", shared)  # finds the blob present and commits a version
        removed = ws.artifacts.rollback(
            session, referenced=lambda: ws.artifacts.referenced_by(ws.store))
    assert removed == [gone.sha256]
    assert ws.artifacts.has(kept.sha256) and not ws.artifacts.has(gone.sha256)
    assert ws.models.download("other", dest=tmp_path / "dl").read_bytes() == shared.read_bytes()
    assert not list((ws.artifacts.root / "pending").iterdir())  # the session's pins are gone


def test_reusing_an_old_orphan_blob_restarts_its_gc_grace(ws: Workspace) -> None:
    import os
    import time

    sha = ws.artifacts.put_bytes(b"an orphan, reused later")
    old = time.time() - 7200
    os.utime(ws.artifacts.blob_path(sha), (old, old))
    assert ws.artifacts.put_bytes(b"an orphan, reused later") == sha  # e.g. a job snapshot
    assert ws.gc() == []  # default grace: used a moment ago
    assert ws.gc(older_than_s=0) == [sha]


def test_snapshot_stores_and_lays_out_a_folder(ws: Workspace, files: Path, tmp_path: Path) -> None:
    stored = ws.artifacts.snapshot(files / "model_dir", tmp_path / "code")
    assert (tmp_path / "code" / "sub" / "b.txt").read_text() == "b"
    assert stored.kind == "folder" and ws.artifacts.has(stored.sha256)
    assert not list((ws.artifacts.root / "pending").iterdir())
