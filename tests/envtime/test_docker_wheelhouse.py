"""The wheelhouse with the Docker builder: a build keeps the lock's files for the image's
platform, and an image pruned and rebuilt from the lock installs them from a short-lived server
on the bridge gateway (no index), giving the identical `pip freeze`."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.environments.docker_wheels import WheelServer, bridge_gateway
from jupyter_mlws.environments.locks import parse_lock
from jupyter_mlws.environments.wheelhouse import Wheelhouse, file_sha256
from jupyter_mlws.errors import LockInstallError
from tests.helpers import drop_cached_image

pytestmark = pytest.mark.docker

_SERVED = re.compile(r"served to the build at (http://\S+/)")


@pytest.fixture
def dws(ws: Workspace, docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    docker_client.images.get("mlws/base-python:3.11-bookworm")  # made by scripts/test.sh
    monkeypatch.setenv("MLWS_BUILD_TOOL", "pip")
    return ws


def _freeze(docker_client: Any, image: str) -> list[str]:
    out = docker_client.containers.run(image, ["/opt/mlws/venv/bin/python", "-m", "pip", "freeze",
                                               "--local"], remove=True, network_disabled=True)
    return sorted(ln for ln in out.decode().splitlines() if ln.strip())


def _pyc_count(docker_client: Any, image: str) -> int:
    out = docker_client.containers.run(
        image, ["/bin/sh", "-c", "find /opt/mlws/venv/lib -name '*.pyc' -path '*six*' | wc -l"],
        remove=True, network_disabled=True)
    return int(out.decode().strip())


def _six_pyc_flags(docker_client: Any, image: str) -> int:
    """The PEP 552 flags of six's bytecode in the image (0: timestamp, 3: checked hash)."""
    out = docker_client.containers.run(image, [
        "/opt/mlws/venv/bin/python", "-c",
        "import importlib.util as u, six; "
        "print(int.from_bytes(open(u.cache_from_source(six.__file__), 'rb').read()[4:8], "
        "'little'))"], remove=True, network_disabled=True)
    return int(out.decode().strip())


_HOST_PYC = re.compile(r"mlws-bytecode: [1-9]\d* files compiled on the host")


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=10).close()
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


def _dead_index(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/simple"
    for var, value in (("PIP_INDEX_URL", dead), ("PIP_EXTRA_INDEX_URL", dead),
                       ("PIP_FIND_LINKS", ""), ("PIP_RETRIES", "0"), ("PIP_TIMEOUT", "3")):
        monkeypatch.setenv(var, value)


def test_image_rebuilt_from_the_lock_installs_from_the_wheelhouse(
        dws: Workspace, docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = dws.environments.create("dwheels", image="python:3.11",
                                  pip_requirements=["iniconfig>=1", "six>=1.3"])  # own hash
    drop_cached_image(dws, env)
    lines: list[str] = []
    first = dws.environments.build("dwheels", log=lines.append)
    assert any(ln.startswith("Kept the 2 file(s) of the lock in the wheelhouse") for ln in lines)
    lock = parse_lock(dws.environments.lock("dwheels"))
    house = dws.environments._docker().wheels.house
    kept = house.files_for(lock.requirements, verify=True)
    assert kept is not None and {p.name.split("-")[0] for p in kept} == {"iniconfig", "six"}
    before = _freeze(docker_client, first.image)
    assert _six_pyc_flags(docker_client, first.image) == 0  # the cold build compiled its own
    dws.environments._docker().remove(first.image_id, force=True)  # what `env prune` does

    _dead_index(monkeypatch)  # the host's pip cannot reach an index: nothing is fetched
    lines.clear()
    again = dws.environments.build("dwheels", log=lines.append)
    assert again.from_lock and again.image_id != first.image_id
    served = [m.group(1) for ln in lines if (m := _SERVED.search(ln))]
    assert len(served) == 1 and "Installing the lock from the wheelhouse: 2 file(s)" in lines[
        next(i for i, ln in enumerate(lines) if _SERVED.search(ln))]
    assert f"Looking in links: {served[0]}" in again.log
    assert "--no-index" in again.log and "--require-hashes" in again.log
    assert not any(ln.startswith("mlws-wheelhouse:") for ln in again.log.splitlines())
    assert not any("could not reach the wheelhouse" in ln for ln in lines)
    assert _freeze(docker_client, again.image) == before
    assert _pyc_count(docker_client, again.image) > 0  # bytecode compiled at build time
    # ... on this machine (after the first build), served and unpacked instead of compiled
    assert any(ln.startswith("Their bytecode (Python 3.11, checked-hash) served too")
               for ln in lines)
    assert _HOST_PYC.search(again.log), again.log[-2000:]
    assert _six_pyc_flags(docker_client, again.image) == 3
    assert _refused(served[0])  # the server is gone with the build
    assert dws.environments.lock("dwheels") == lock.text

    # a damaged wheelhouse file is dropped; the rebuild uses the index and keeps it again
    monkeypatch.undo()
    monkeypatch.setenv("MLWS_BUILD_TOOL", "pip")
    damaged = next(p for p in kept if p.name.startswith("iniconfig"))
    good = damaged.read_bytes()
    damaged.write_bytes(good[:-10] + b"0123456789")
    lines.clear()
    third = dws.environments.build("dwheels", no_cache=True, log=lines.append)
    assert any("was damaged" in ln and damaged.name in ln for ln in lines)
    assert not any(_SERVED.search(ln) for ln in lines)
    assert _freeze(docker_client, third.image) == before
    fresh = house.files_for(lock.requirements, verify=True)
    assert fresh is not None and next(p for p in fresh if p.name == damaged.name).read_bytes() \
        == good
    dws.environments._docker().remove(third.image_id, force=True)

    # by default (no MLWS_BUILD_TOOL) the host's uv, served beside the files, installs the lock
    monkeypatch.delenv("MLWS_BUILD_TOOL")
    _dead_index(monkeypatch)
    lines.clear()
    fourth = dws.environments.build("dwheels", log=lines.append)
    assert fourth.from_lock
    assert any(_SERVED.search(ln) and ln.endswith("(no index) with uv") for ln in lines)
    assert "Installed 2 packages" in fourth.log  # uv's words, not pip's
    assert "Looking in links" not in fourth.log
    assert not any(ln.startswith("mlws-wheelhouse:") for ln in fourth.log.splitlines())
    assert _freeze(docker_client, fourth.image) == before
    assert _pyc_count(docker_client, fourth.image) > 0
    assert _HOST_PYC.search(fourth.log) and _six_pyc_flags(docker_client, fourth.image) == 3
    out = docker_client.containers.run(fourth.image, ["/bin/sh", "-c", "ls /tmp | wc -l"],
                                       remove=True, network_disabled=True)
    assert out.decode().strip() == "0"  # the binary was removed in the step that fetched it
    assert dws.environments.lock("dwheels") == lock.text
    dws.environments._docker().remove(fourth.image_id, force=True)


def test_a_failed_build_stops_the_server_and_keeps_the_old_image(
        dws: Workspace, docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = dws.environments.create("dwheelsbad", image="python:3.11",
                                  pip_requirements=["iniconfig>=1.1"])  # own hash
    drop_cached_image(dws, env)
    monkeypatch.delenv("MLWS_BUILD_TOOL")  # the default: uv installs the served files, then pip
    first = dws.environments.build("dwheelsbad")
    lock = parse_lock(dws.environments.lock("dwheelsbad"))
    sha = lock.requirements[0].split("--hash=sha256:")[1].split()[0]
    # a lock whose one file is kept but names another package: pip cannot install it from the
    # served files nor (the file's hash) from the index
    dws.environments.set_lock(env.env_hash, "3.11", f"six==1.17.0 --hash=sha256:{sha}\n",
                              builder="docker")
    lines: list[str] = []
    with pytest.raises(LockInstallError) as err:
        dws.environments.build("dwheelsbad", no_cache=True, log=lines.append)
    assert err.value.details["package"] == "six"
    served = [m.group(1) for ln in lines if (m := _SERVED.search(ln))]
    assert len(served) == 1 and _refused(served[0])
    assert lines[next(i for i, ln in enumerate(lines) if _SERVED.search(ln))].endswith("with uv")
    # uv refused the served file (another package's hash), then pip tried the index
    assert any(ln.strip().startswith("mlws-wheelhouse: installing from the wheelhouse server "
                                     "failed") for ln in lines)
    kept = dws.environments.lookup(env)
    assert kept is not None and kept.image_id == first.image_id
    dws.environments._docker().remove(first.image_id, force=True)


def test_the_server_exposes_only_the_files_of_the_lock(tmp_path: Path, docker_client: Any) -> None:
    house = Wheelhouse(tmp_path / "wheels")
    names = ["a-1.0-py3-none-any.whl", "b-2.0-py3-none-any.whl", "secret-3.0-py3-none-any.whl"]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(f"file {i}".encode())
        house.add(tmp_path / name)
    shas = {n: file_sha256(tmp_path / n) for n in names}
    files = {n: house.path_of(shas[n]) for n in names[:2]}
    gateway = bridge_gateway(docker_client)
    assert gateway is not None
    (tmp_path / "tool").write_bytes(b"a binary")
    server = WheelServer({n: p for n, p in files.items() if p is not None}, shas, gateway,
                         unlisted={"mlws-uv": tmp_path / "tool"})
    try:
        page = urllib.request.urlopen(server.url, timeout=10).read().decode()
        assert sorted(re.findall(r'href="([^"#]+)#sha256=([0-9a-f]{64})"', page)) == [
            (n, shas[n]) for n in names[:2]]
        assert "mlws-uv" not in page  # served by name, never offered to the installer
        assert urllib.request.urlopen(server.url + "mlws-uv", timeout=10).read() == b"a binary"
        assert urllib.request.urlopen(server.url + names[0], timeout=10).read() == b"file 0"
        sha = shas[names[2]]
        for path in (names[2], f"{sha[:2]}/{sha}/{names[2]}", f"../{names[0]}",
                     f"%2e%2e/{names[0]}", str(tmp_path / names[0]).lstrip("/")):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(server.url + path, timeout=10)
            assert err.value.code == 404, path
        # a container on the engine's bridge reaches it (as a build does)
        out = docker_client.containers.run(
            "mlws/base-python:3.11-bookworm",
            ["python3", "-c", f"import urllib.request as u; print(u.urlopen("
                              f"{server.url + names[1]!r}).read().decode())"], remove=True)
        assert out.decode().strip() == "file 1"
    finally:
        server.stop()
    assert _refused(server.url)
