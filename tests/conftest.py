"""Fixtures shared by every test: a throwaway HOME and a real workspace in a temp folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from jupyter_mlws import Workspace
from tests.helpers import cli_invoker, stop_jobs

#: Test folders that run, in order, in one pytest-xdist worker (scripts/test.sh runs two): the
#: two-node Ray cluster is one per machine; environment-lifecycle tests prune, patch and rebuild
#: images and venvs that their neighbours in the folder build too. Every other test file is a
#: unit of its own. The long units are handed out first.
ONE_WORKER_FOLDERS = {"envtime": "env-lifecycle", "integration": "env-lifecycle",
                      "cluster": "ray-cluster"}
FIRST = ["env-lifecycle", "ray-cluster"]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for ``pytest -n N --dist loadgroup``: a test file runs whole in one worker (its
    module fixtures are made once), the folders of :data:`ONE_WORKER_FOLDERS` as one unit."""
    tests = config.rootpath / "tests"
    groups: dict[str, str] = {}
    for item in items:
        try:
            rel = item.path.relative_to(tests)
        except ValueError:
            continue
        group = ONE_WORKER_FOLDERS.get(rel.parts[0], rel.as_posix())
        groups[item.nodeid] = group
        item.add_marker(pytest.mark.xdist_group(group))
    rank = {g: i for i, g in enumerate(FIRST)}
    items.sort(key=lambda it: rank.get(groups.get(it.nodeid, ""), len(FIRST)))  # stable


@pytest.fixture(scope="session")
def shared_envs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Virtualenvs built by one test are reused by the next, as on a user's machine (one folder
    per xdist worker, as each user has theirs)."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A ``docker.DockerClient`` on a live engine; fails in CI (``CI`` set), else skips, without one."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        message = f"Docker engine not reachable ({exc}); start it with `bash scripts/docker-up.sh`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield client
    client.close()


def _isolate(monkeypatch: pytest.MonkeyPatch, home: Path, envs_dir: Path) -> None:
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLWS_ENVS_DIR", str(envs_dir))
    monkeypatch.delenv("MLWS_WORKSPACE", raising=False)
    monkeypatch.delenv("MLWS_STORE_URI", raising=False)
    # the secret key lives in the throwaway HOME's config folder, never the user's
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("MLWS_SECRET_KEY", raising=False)
    # no job agent (warm kernels) lingers after a test; tests/jobs/test_agent.py turns it on
    monkeypatch.setenv("MLWS_JOB_AGENT", "0")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                   shared_envs_dir: Path) -> None:
    """No test sees the user's ~/.mlws or a workspace named by the environment."""
    _isolate(monkeypatch, tmp_path_factory.mktemp("home"), shared_envs_dir)


@pytest.fixture(scope="session")
def template_workspace(tmp_path_factory: pytest.TempPathFactory, shared_envs_dir: Path) -> Path:
    """One workspace made by ``Workspace.init`` (in the same isolated environment as a test's);
    each ``ws`` is a copy of it: initializing and seeding one costs ~0.2 s of CPU, a copy ~0.01 s.
    """
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp_path_factory.mktemp("template-home"), shared_envs_dir)
        workspace = Workspace.init(tmp_path_factory.mktemp("template") / "project")
        workspace.close()
    return workspace.path


@pytest.fixture
def ws(tmp_path: Path, template_workspace: Path) -> Iterator[Workspace]:
    """A fresh workspace in ``tmp_path/project`` (a copy of :func:`template_workspace`)."""
    target = tmp_path / "project" / template_workspace.name
    shutil.copytree(template_workspace, target)
    workspace = Workspace.open(target)
    yield workspace
    workspace.close()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with a small model file, a model folder and an mlflow model."""
    root = tmp_path / "files"
    root.mkdir()
    (root / "model.pkl").write_bytes(b"weights-1")
    folder = root / "model_dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    mlflow = root / "mlflow_model"
    mlflow.mkdir()
    (mlflow / "MLmodel").write_text("flavors: {}\n")
    (mlflow / "model.pkl").write_bytes(b"m")
    return root


@pytest.fixture
def cli_ws(ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace the CLI finds (``MLWS_WORKSPACE``), run from a temp folder; its jobs are
    stopped afterwards."""
    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    monkeypatch.chdir(tmp_path)
    yield ws
    stop_jobs(ws, timeout=60)


@pytest.fixture
def mlws(cli_ws: Workspace) -> Callable[..., Result]:
    """``mlws ARGS...`` as typed in ``cli_ws``; asserts the exit code (0 unless ``code``)."""
    return cli_invoker()
