"""Environment images built by a real Docker engine (docker_builder + dockerfile).

Uses the ``docker_client`` fixture of conftest.py (skips without an engine, fails in CI) and the
offline base image ``mlws/base-python:3.11-bookworm`` (made by ``mlws image bootstrap`` when
missing; ``MLWS_TEST_BASE_IMAGE`` names another Debian/Python base).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from jupyter_mlws.artifacts import ArtifactStore
from jupyter_mlws.assets.environment import DEFAULT_BASE_IMAGE, EnvironmentSpec
from jupyter_mlws.docker_engine import run_to_end
from jupyter_mlws.environments.docker_builder import (
    LABEL_BASE_ID,
    LABEL_ENVIRONMENT,
    LABEL_HASH,
    LABEL_KIND,
    DockerBuilder,
)
from jupyter_mlws.environments.identity import image_name
from jupyter_mlws.errors import (
    BuildError,
    CondaTranslationError,
    DockerUnavailableError,
    PythonUnavailableError,
)

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
PINS = ["six==1.16.0", "idna==3.7"]


class CountingAPIClient(docker.APIClient):
    """The real API client, counting calls of the build endpoint."""

    builds = 0

    def build(self, *args: Any, **kwargs: Any) -> Any:
        type(self).builds += 1
        return super().build(*args, **kwargs)


class CountingClient(docker.DockerClient):
    """A real DockerClient whose ``api`` counts builds (injected into the builder)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.api = CountingAPIClient(*args, **kwargs)


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    name = os.environ.get("MLWS_TEST_BASE_IMAGE", DEFAULT_BASE_IMAGE)
    try:
        docker_client.images.get(name)
        return name
    except docker.errors.ImageNotFound:
        pass
    if name != DEFAULT_BASE_IMAGE:
        pytest.fail(f"MLWS_TEST_BASE_IMAGE={name} is not in the engine")
    from jupyter_mlws.environments.bootstrap import bootstrap_base_images

    bootstrap_base_images(docker_client, [name])  # what `mlws image bootstrap` does (~45 s)
    docker_client.images.get(name)
    return name


@pytest.fixture
def client(docker_client: docker.DockerClient) -> CountingClient:
    c = CountingClient.from_env()
    CountingAPIClient.builds = 0
    return c


@pytest.fixture
def builder(client: CountingClient, tmp_path: Path) -> DockerBuilder:
    return DockerBuilder(client, lock_dir=tmp_path / "locks", artifacts=ArtifactStore(tmp_path))


def spec(base: str, pip: list[str] | None = None, name: str = "env", **kw: Any) -> EnvironmentSpec:
    return EnvironmentSpec(name=name, image=base, pip_requirements=pip, **kw)


def remove_quietly(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_image(ref, force=True)


def quiet(_line: str) -> None:
    pass


def test_cache_hit_does_no_build(builder: DockerBuilder, client: CountingClient, base_image: str):
    s = spec(base_image, PINS)
    # an image of this hash left by an earlier run may sit on an older base: build it afresh
    remove_quietly(client, f"{image_name(s.env_hash())}:latest")
    first = builder.build(s, env_name="env", env_version="1", log=quiet)
    assert first.image == f"{image_name(s.env_hash())}:latest"
    CountingAPIClient.builds = 0
    again = builder.build(s, env_name="env", env_version="1", log=quiet)
    assert again.cached is True
    assert CountingAPIClient.builds == 0
    assert again.image_id == first.image_id
    t0 = time.perf_counter()
    hit = builder.lookup(s)
    assert hit is not None and hit.image_id == first.image_id
    assert time.perf_counter() - t0 < 0.5
    labels = client.api.inspect_image(first.image)["Config"]["Labels"]
    assert labels[LABEL_HASH] == s.env_hash()
    assert labels[LABEL_KIND] == "managed"
    assert labels[LABEL_BASE_ID] == client.api.inspect_image(base_image)["Id"]
    assert {"six==1.16.0", "idna==3.7"} <= set(hit.resolved_packages)
    assert builder.base_changed(s) is False
    assert any(first.image in row["tags"] for row in builder.images())


def test_renaming_does_not_rebuild(builder: DockerBuilder, base_image: str):
    first = builder.build(spec(base_image, PINS), env_name="env", env_version="1", log=quiet)
    CountingAPIClient.builds = 0
    renamed = spec(base_image, PINS, name="another-name", version="7", description="same")
    assert renamed.env_hash() == first.env_hash
    result = builder.build(renamed, env_name="another-name", env_version="7", log=quiet)
    assert result.cached and result.image_id == first.image_id
    assert CountingAPIClient.builds == 0


def test_reordering_packages_builds_another_image(
    builder: DockerBuilder, client: CountingClient, base_image: str
):
    a = builder.build(spec(base_image, PINS), env_name="env", env_version="1", log=quiet)
    reordered = spec(base_image, list(reversed(PINS)))
    assert reordered.env_hash() != a.env_hash
    remove_quietly(client, f"{image_name(reordered.env_hash())}:latest")
    CountingAPIClient.builds = 0
    b = builder.build(reordered, env_name="env", env_version="2", log=quiet)
    assert CountingAPIClient.builds == 1
    assert not b.cached and b.image_id != a.image_id


def test_pin_change_reuses_base_and_step_layers(
    builder: DockerBuilder, client: CountingClient, base_image: str
):
    steps = ["RUN echo docker-step-layer > /opt/step.txt"]
    one = spec(base_image, ["six==1.16.0", "idna==3.7"], docker_steps=steps)
    two = spec(base_image, ["six==1.16.0", "idna==3.6"], docker_steps=steps)
    remove_quietly(client, f"{image_name(one.env_hash())}:latest")  # not one on an older base
    first = builder.build(one, env_name="env", env_version="1", log=quiet)
    remove_quietly(client, f"{image_name(two.env_hash())}:latest")
    lines: list[str] = []
    second = builder.build(two, env_name="env", env_version="2", log=lines.append)
    assert not second.cached and second.image_id != first.image_id
    assert "idna==3.6" in second.resolved_packages

    # Every step before the package layers came from the cache ...
    log = second.log.split("\n")
    step_idx = [i for i, ln in enumerate(log) if ln.startswith("Step ")]
    req = next(i for i in step_idx if "COPY requirements.txt" in log[i])
    for i in step_idx[1 : step_idx.index(req)]:
        assert "Using cache" in log[i + 1], log[i]
    assert any(ln.startswith("==> [mlws ") for ln in lines)  # steps stand out in the stream

    # ... and the image history shares every layer below them.
    def below_packages(image_id: str) -> list[str]:
        hist = list(reversed(client.api.history(image_id)))  # oldest first
        cut = next(i for i, h in enumerate(hist) if "requirements.txt" in h["CreatedBy"])
        return [h["Id"] for h in hist[:cut]]

    shared = below_packages(first.image_id)
    assert shared == below_packages(second.image_id)
    assert any("docker-step-layer" in h["CreatedBy"] for h in client.api.history(second.image_id))


def test_build_context(builder: DockerBuilder, client: CountingClient, base_image: str, tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "docker").mkdir(parents=True)
    marker = uuid.uuid4().hex
    (ctx / "hello.txt").write_text(marker)
    (ctx / "docker" / "Dockerfile").write_text(
        f"FROM {base_image}\nCOPY hello.txt /hello.txt\nRUN test -s /hello.txt\n"
    )
    store = ArtifactStore(tmp_path)
    art = store.put_path(ctx)
    files = [(rel, sha) for rel, sha, _n, _x in store.manifest(art.sha256)]
    s = EnvironmentSpec(
        name="ctx",
        build={"dockerfile_path": "docker/Dockerfile", "tree_sha256": art.sha256, "files": files},
    )
    assert s.kind == "context"
    result = builder.build(s, env_name="ctx", env_version="1", log=quiet)
    assert not result.cached and CountingAPIClient.builds == 1
    assert result.base_image == base_image
    assert result.base_image_id == client.api.inspect_image(base_image)["Id"]
    # read the output before the container is removed (run(remove=True) can lose it)
    assert run_to_end(client, result.image, ["cat", "/hello.txt"]) == (0, marker.encode())
    labels = client.api.inspect_image(result.image)["Config"]["Labels"]
    assert labels[LABEL_KIND] == "context" and labels[LABEL_ENVIRONMENT] == "ctx:1"


def test_ready_image_is_tagged_not_built(
    builder: DockerBuilder, client: CountingClient, base_image: str
):
    s = EnvironmentSpec(name="ready", image=base_image)
    assert s.kind == "image"
    remove_quietly(client, f"{image_name(s.env_hash())}:latest")
    result = builder.build(s, env_name="ready", env_version="1", log=quiet)
    assert CountingAPIClient.builds == 0
    base_id = client.api.inspect_image(base_image)["Id"]
    assert result.image_id == base_id and result.base_image_id == base_id
    assert client.api.inspect_image(f"{image_name(s.env_hash())}:latest")["Id"] == base_id
    assert isinstance(result.resolved_packages, list)  # pip freeze is tried, not required
    hit = builder.lookup(s)
    assert hit is not None and hit.cached and hit.image_id == base_id

    missing = EnvironmentSpec(name="gone", image=f"mlws-test/absent-{uuid.uuid4().hex[:8]}:1")
    with pytest.raises(BuildError) as err:
        builder.build(missing, env_name="gone", env_version="1", log=quiet)
    assert "could not be pulled" in err.value.message
    assert builder.lookup(missing) is None


def test_broken_requirement_fails_and_leaves_no_image(
    builder: DockerBuilder, client: CountingClient, base_image: str
):
    s = spec(base_image, ["six==1.16.0", "this-package-does-not-exist-mlws==0.0.1"])
    with pytest.raises(BuildError) as err:
        builder.build(s, env_name="broken", env_version="1", log=quiet)
    e = err.value
    assert e.step is not None and "pip install" in e.step
    assert e.log_tail and "this-package-does-not-exist-mlws" in e.log_tail
    assert len(e.log_tail.splitlines()) <= 50
    assert "at step" in e.message
    with pytest.raises(docker.errors.ImageNotFound):
        client.api.inspect_image(f"{image_name(s.env_hash())}:latest")
    assert builder.lookup(s) is None


def test_conda_only_dependency_fails_clearly(builder: DockerBuilder, base_image: str):
    # conda packages are translated to PyPI on the offline bases; one with no PyPI equivalent
    # is named (tests/azure/test_images_conda.py builds translated ones for real)
    conda = {"dependencies": ["python=3.11", "pip", "r-base=4.3", {"pip": ["six==1.16.0"]}]}
    s = EnvironmentSpec(name="conda", image=base_image, conda_file=conda)
    with pytest.raises(CondaTranslationError) as err:
        builder.build(s, env_name="conda", env_version="1", log=quiet)
    msg = err.value.message
    assert "r-base=4.3" in msg and "conda" in msg and "six" not in msg
    assert "pip:" in str(err.value)
    assert builder.lookup(s) is None


def test_other_python_version_fails_clearly(builder: DockerBuilder, base_image: str,
                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLWS_PYTHON_FALLBACK", raising=False)
    conda = {"dependencies": ["python=3.12", {"pip": ["six==1.16.0"]}]}
    s = EnvironmentSpec(name="py312", image=base_image, conda_file=conda)
    with pytest.raises(PythonUnavailableError) as err:
        builder.build(s, env_name="py312", env_version="1", log=quiet)
    assert "python=3.12" in err.value.message and "Python 3.9, 3.11, 3.13" in err.value.message


def test_missing_bootstrap_base_says_how_to_make_it(builder: DockerBuilder):
    s = spec("mlws/base-absent:0", ["six==1.16.0"])
    with pytest.raises(BuildError) as err:
        builder.build(s, env_name="x", env_version="1", log=quiet)
    assert "mlws image bootstrap" in str(err.value)
    assert CountingAPIClient.builds == 0


def test_refresh_base_rebuilds_when_the_base_moved(
    builder: DockerBuilder, client: CountingClient, docker_client: docker.DockerClient, base_image
):
    repo, tag = "mlws-test/refresh-base", uuid.uuid4().hex[:12]
    base_ref = f"{repo}:{tag}"
    client.api.tag(base_image, repo, tag)
    s = spec(base_ref, ["six==1.16.0"])
    try:
        first = builder.build(s, env_name="refresh", env_version="1", log=quiet)
        assert first.base_image_id == client.api.inspect_image(base_image)["Id"]
        assert builder.base_changed(s) is False
        CountingAPIClient.builds = 0
        assert builder.build(s, env_name="refresh", env_version="1", refresh_base=True).cached
        assert CountingAPIClient.builds == 0

        # The tag now names another image (as after a `docker pull` of a newer base).
        moved = docker_client.images.build(
            fileobj=io.BytesIO(f"FROM {base_image}\nLABEL moved={tag}\n".encode()),
            tag=base_ref,
            rm=True,
        )[0]
        assert builder.base_changed(s) is True
        second = builder.build(s, env_name="refresh", env_version="1", refresh_base=True, log=quiet)
        assert not second.cached and CountingAPIClient.builds == 1
        assert second.base_image_id == moved.id and second.image_id != first.image_id
        assert builder.base_changed(s) is False
    finally:
        remove_quietly(client, builder.image_ref(s))
        remove_quietly(client, base_ref)


def test_unreachable_engine_is_docker_unavailable(tmp_path: Path):
    dead = docker.DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41")
    b = DockerBuilder(dead, lock_dir=tmp_path / "locks")
    with pytest.raises(DockerUnavailableError):
        b.lookup(spec(DEFAULT_BASE_IMAGE, ["six"]))


CHILD = textwrap.dedent(
    """
    import json, sys
    from jupyter_mlws.assets.environment import EnvironmentSpec
    from jupyter_mlws.environments.docker_builder import DockerBuilder
    spec = EnvironmentSpec.model_validate_json(sys.argv[2])
    r = DockerBuilder(lock_dir=sys.argv[1]).build(
        spec, env_name="race", env_version="1", log=lambda _l: None)
    print(json.dumps({"cached": r.cached, "image_id": r.image_id}))
    """
)


def test_two_processes_build_one_hash_once(tmp_path: Path, base_image: str):
    unique = f"LABEL org.mlws.test-run={uuid.uuid4().hex}"  # a hash no earlier run built
    s = spec(base_image, ["six==1.16.0"], docker_steps=[unique])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    args = [sys.executable, "-c", CHILD, str(tmp_path / "locks"), s.model_dump_json()]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(o["cached"] for o in outs) == [False, True]
    assert outs[0]["image_id"] == outs[1]["image_id"]
    docker.from_env().api.remove_image(f"{image_name(s.env_hash())}:latest", force=True)


def test_no_cache_rebuilds_and_replaces_the_tag(
    builder: DockerBuilder, client: CountingClient, base_image: str
) -> None:
    """Defect 15: no_cache used to return the cached image without building."""
    # A hash no earlier run built; its RUN step writes the moment it ran into the image.
    stamp = f"RUN date +%s%N > /built-at && echo {uuid.uuid4().hex} > /run-id"
    s = spec(base_image, ["six==1.16.0"], docker_steps=[stamp])
    ref = builder.image_ref(s)
    try:
        first = builder.build(s, env_name="fresh", env_version="1", log=quiet)
        first_stamp = run_to_end(client, ref, ["cat", "/built-at"])
        CountingAPIClient.builds = 0
        lines: list[str] = []
        second = builder.build(s, env_name="fresh", env_version="1", log=lines.append,
                               no_cache=True)
        assert CountingAPIClient.builds == 1 and not second.cached
        assert not any("Using the cached image" in ln for ln in lines)
        # every step ran: none came from the cache, the date step wrote a new stamp
        assert "Using cache" not in second.log
        assert any(ln.startswith("==> [mlws") and "date +%s%N" in ln for ln in lines)
        assert second.image_id != first.image_id
        assert second.replaced_image_id == first.image_id
        assert client.api.inspect_image(ref)["Id"] == second.image_id  # the tag moved
        assert run_to_end(client, ref, ["cat", "/built-at"]) != first_stamp
        with pytest.raises(docker.errors.ImageNotFound):  # nothing used it: removed
            client.api.inspect_image(first.image_id)
        assert "six==1.16.0" in second.resolved_packages
        # both builds are in the history; the next plain build is the new image, cached
        history = builder.history(s.env_hash())
        assert [h["image_id"] for h in history] == [first.image_id, second.image_id]
        assert [h["no_cache"] for h in history] == [False, True]
        assert history[1]["replaced_image_id"] == first.image_id
        CountingAPIClient.builds = 0
        again = builder.build(s, env_name="fresh", env_version="1", log=quiet)
        assert again.cached and again.image_id == second.image_id
        assert CountingAPIClient.builds == 0 and len(builder.history(s.env_hash())) == 2
    finally:
        remove_quietly(client, ref)
