"""The offline base image: made by debootstrap + import, reused, and usable by builders."""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from jupyter_mlws.docker_engine import run_to_end
from jupyter_mlws.environments import bootstrap
from jupyter_mlws.environments.bootstrap import (
    DEFAULT_BASE_IMAGE,
    HOST_CA_BUNDLE,
    PIP_CA_DOCKERFILE_SNIPPET,
    BaseImageRecipe,
    bootstrap_base_images,
)
from jupyter_mlws.errors import BuildError, DockerUnavailableError

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def base_image(docker_client: Any) -> str:
    """Bootstraps the default base image (reused when it is already in the engine)."""
    (result,) = bootstrap_base_images(docker_client, [DEFAULT_BASE_IMAGE], log=lambda _: None)
    assert result.name == DEFAULT_BASE_IMAGE
    return DEFAULT_BASE_IMAGE


def _run(client: Any, image: str, script: str) -> str:
    """The output of ``script`` in a container, read before the container is removed."""
    code, out = run_to_end(client, image, ["sh", "-c", script], network_disabled=True)
    assert code == 0, out
    return out.decode()


def test_base_image_exists_after_bootstrap(docker_client: Any, base_image: str) -> None:
    image = docker_client.images.get(base_image)
    assert base_image in image.tags
    assert image.labels[bootstrap.LABEL_BASE] == base_image
    assert image.attrs["Config"]["Cmd"] == ["python3"]


def test_second_call_reuses_without_debootstrap(
    docker_client: Any, base_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("debootstrap must not run for an image that exists")

    monkeypatch.setattr(bootstrap, "_build", no_build)
    start = time.monotonic()
    (result,) = bootstrap_base_images(docker_client, [base_image], log=lambda _: None)
    assert result.reused is True
    assert result.image_id == docker_client.images.get(base_image).id
    assert result.size > 50_000_000
    assert time.monotonic() - start < 5


def test_python_311_runs_in_a_container(docker_client: Any, base_image: str) -> None:
    out = _run(docker_client, base_image, 'python3 -c "import sys; print(sys.version)"')
    assert out.startswith("3.11"), out


def test_venv_and_pip_work_in_a_container(docker_client: Any, base_image: str) -> None:
    out = _run(docker_client, base_image, "python3 -m venv /tmp/v && /tmp/v/bin/pip --version")
    assert out.startswith("pip ") and "/tmp/v/" in out, out


def test_build_from_base_pip_installs_from_pypi(
    docker_client: Any, base_image: str, tmp_path: Path
) -> None:
    """Proves PIP_CA_DOCKERFILE_SNIPPET: a RUN step reaches PyPI through the host's CA bundle."""
    shutil.copy(HOST_CA_BUNDLE, tmp_path / "mlws-host-ca.crt")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\n{PIP_CA_DOCKERFILE_SNIPPET}"
        'RUN pip install six && python -c "import six, sys; print(sys.prefix, six.__version__)"\n'
    )
    tag = f"mlws-test/pip-ca:{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    try:
        try:
            docker_client.images.build(
                path=str(tmp_path), tag=tag, rm=True, forcerm=True, nocache=True
            )
        except docker.errors.BuildError as exc:
            log = "".join(str(item.get("stream", item.get("error", ""))) for item in exc.build_log)
            pytest.fail(f"build failed: {exc}\n{log[-3000:]}")
        seconds = time.monotonic() - start
        out = _run(docker_client, tag, 'python -c "import six, sys; print(sys.prefix)"')
        assert out.strip() == "/opt/venv"
        print(f"pip-in-build took {seconds:.1f}s")
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


def test_failed_debootstrap_raises_build_error_with_tail(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = "mlws-test/broken:none"
    monkeypatch.setitem(bootstrap.BASE_IMAGES, name, BaseImageRecipe(suite="no-such-suite"))
    with pytest.raises(BuildError) as info:
        bootstrap_base_images(docker_client, [name], log=lambda _: None, workdir=tmp_path)
    assert "debootstrap" in str(info.value)
    assert info.value.log_tail and "no-such-suite" in info.value.log_tail
    assert list(tmp_path.iterdir()) == []  # the temp rootfs is cleaned


def test_unreachable_engine_raises_docker_unavailable(tmp_path: Path) -> None:
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/none.sock", version="1.41")
    with pytest.raises(DockerUnavailableError) as info:
        bootstrap_base_images(client, log=lambda _: None)
    assert "scripts/docker-up.sh" in str(info.value)


def test_unknown_name_is_a_build_error(docker_client: Any) -> None:
    with pytest.raises(BuildError, match="mlws/nope:1"):
        bootstrap_base_images(docker_client, ["mlws/nope:1"], log=lambda _: None)
