"""Builds through the Workspace and the CLI: what a user sees (records, logs, images, prune)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from jupyter_mlws.errors import BuildError

pytestmark = pytest.mark.docker


@pytest.fixture
def dws(ws: Workspace, docker_client: Any) -> Workspace:
    docker_client.images.get("mlws/base-python:3.11-bookworm")  # made by scripts/test.sh
    return ws


def test_build_is_recorded_and_shown(dws: Workspace) -> None:
    env = dws.environments.create("rec", pip_requirements=["six==1.16.0"])
    lines: list[str] = []
    result = dws.environments.build("rec", builder="docker", log=lines.append)
    assert result.image.startswith(env.image) and lines
    record = dws.environments.build_record(env)
    assert record and record["status"] == "succeeded"
    assert record["result"]["image_id"] == result.image_id
    assert any(p.startswith("six==1.16.0") for p in record["result"]["resolved_packages"])
    shown = dws.describe(env)["docker_build"]
    assert shown["status"] == "succeeded" and shown["size"] > 0
    assert "six==1.16.0" in " ".join(shown["resolved_packages"])
    again = dws.environments.build("rec", builder="docker")
    assert again.cached and again.image_id == result.image_id
    assert env.image in dws.environments.logs("rec")  # the build, or the cache hit that found it


def test_failed_build_keeps_its_log(dws: Workspace) -> None:
    dws.environments.create("broken", pip_requirements=["this-package-does-not-exist-mlws==0.0.1"])
    with pytest.raises(BuildError) as err:
        dws.environments.build("broken", builder="docker")
    assert "pip" in str(err.value).lower() or "RUN" in str(err.value)
    env = dws.environments.get("broken")
    record = dws.environments.build_record(env)
    assert record and record["status"] == "failed" and record["error"]
    assert "this-package-does-not-exist-mlws" in dws.environments.logs("broken")


def test_images_and_prune(dws: Workspace) -> None:
    keep = dws.environments.create("keep", pip_requirements=["idna==3.7"])
    drop = dws.environments.create("drop", pip_requirements=["idna==3.6"])
    dws.environments.build("keep")
    dws.environments.build("drop")
    listed = {i["env_hash"]: i for i in dws.environments.images()}
    assert listed[keep.env_hash]["used_by"] == ["keep:1"]
    dws.environments.archive("drop")
    would = dws.environments.prune(dry_run=True)
    assert drop.env_hash in {i["env_hash"] for i in would}
    assert keep.env_hash not in {i["env_hash"] for i in would}
    removed = dws.environments.prune()
    assert drop.env_hash in {i["env_hash"] for i in removed}
    assert dws.environments.lookup(drop) is None
    assert dws.environments.lookup(keep) is not None


def test_prune_keeps_an_image_another_workspace_of_the_machine_uses(
        dws: Workspace, tmp_path: Path) -> None:
    import shutil

    other = Workspace.init(tmp_path / "other")
    try:
        shared = other.environments.create("shared", pip_requirements=["idna==3.5"])
        other.environments.build("shared")
        mine = dws.environments.create("mine", pip_requirements=["idna==3.5"])
        assert mine.env_hash == shared.env_hash
        dws.environments.build("mine")  # the same image, found in the cache
        dws.environments.archive("mine")
        # the other workspace still uses it: pruning here leaves it
        assert shared.env_hash not in {i["env_hash"] for i in dws.environments.prune()}
        assert dws.environments.lookup(mine) is not None
    finally:
        other.close()
    shutil.rmtree(tmp_path / "other")  # that workspace is gone: now the image goes
    assert shared.env_hash in {i["env_hash"] for i in dws.environments.prune()}
    assert dws.environments.lookup(mine) is None


def test_cli_build_logs_images(dws: Workspace, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_WORKSPACE", str(dws.path))
    runner = CliRunner()
    (tmp_path / "req.txt").write_text("six==1.16.0\n")
    out = runner.invoke(main, ["env", "create", "-n", "cli-env", "--pip-requirements",
                               str(tmp_path / "req.txt")])
    assert out.exit_code == 0, out.output
    built = runner.invoke(main, ["env", "build", "cli-env"])
    assert built.exit_code == 0, built.output
    assert "mlws/mlws_" in built.output
    shown = json.loads(runner.invoke(main, ["env", "show", "cli-env", "-o", "json"]).output)
    assert shown["docker_build"]["status"] == "succeeded"
    logs = runner.invoke(main, ["env", "logs", "cli-env"])
    assert logs.exit_code == 0 and logs.output.strip()
    images = runner.invoke(main, ["env", "images"])
    assert "cli-env:1" in images.output
    boot = runner.invoke(main, ["image", "bootstrap"])
    assert boot.exit_code == 0 and "already there" in boot.output


def test_venv_builds_through_the_workspace(ws: Workspace) -> None:
    ws.environments.create("v", pip_requirements=["six==1.15.0"])
    first = ws.environments.build("v", builder="venv")
    second = ws.environments.build("v", builder="venv")
    assert not first.cached and second.cached and first.image == second.image
    assert ws.describe(ws.environments.get("v"))["venv_build"]["status"] == "succeeded"
    ws.environments.create("steps", image="b", docker_steps=["RUN true"], pip_requirements=["six"])
    from jupyter_mlws.errors import UnsupportedEnvironmentError

    with pytest.raises(UnsupportedEnvironmentError, match="Docker steps"):
        ws.environments.build("steps", builder="venv")


def test_no_cache_rebuilds_through_the_workspace_and_cli(
    dws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 15: `mlws env build --no-cache` said "Using the cached image" and built nothing."""
    import uuid

    env = dws.environments.create(
        "fresh", pip_requirements=["six==1.16.0"],
        docker_steps=[f"RUN date +%s%N > /built-at && echo {uuid.uuid4().hex} > /run-id"])
    first = dws.environments.build("fresh")
    assert not first.cached
    monkeypatch.setenv("MLWS_WORKSPACE", str(dws.path))
    out = CliRunner().invoke(main, ["env", "build", "fresh", "--no-cache", "-o", "json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["cached"] is False and shown["image_id"] != first.image_id
    assert shown["replaced_image_id"] == first.image_id
    record = dws.environments.build_record(env)
    assert record and record["status"] == "succeeded"
    assert record["result"]["image_id"] == shown["image_id"]
    assert record["result"]["replaced_image_id"] == first.image_id
    log = dws.environments.logs("fresh")
    assert "Using cache" not in log and "date +%s%N" in log
    history = dws.environments.build_history(env)
    assert [h["image_id"] for h in history][-2:] == [first.image_id, shown["image_id"]]
    assert history[-1]["no_cache"] is True and history[-1]["environment"] == "fresh:1"
    again = dws.environments.build("fresh")
    assert again.cached and again.image_id == shown["image_id"]
    dws.builder("docker").remove(again.image_id, force=True)


def test_venv_no_cache_makes_the_venv_again(ws: Workspace) -> None:
    ws.environments.create("vfresh", pip_requirements=["six==1.16.0"])
    first = ws.environments.build("vfresh", builder="venv")
    planted = first.image + "/planted-by-a-job"
    Path(planted).write_text("x")
    second = ws.environments.build("vfresh", builder="venv", no_cache=True)
    assert not second.cached and second.image == first.image
    assert not Path(planted).exists()  # a new folder, not the old one
    assert second.built_at and second.built_at != first.built_at
    assert ws.environments.lookup(ws.environments.get("vfresh"), "venv").built_at == second.built_at
