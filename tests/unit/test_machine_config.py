"""Mirrors and package indexes come from the machine's configuration, never from the code.

Real-format apt sources (deb822 and one-line) and pip.conf files are written to a temp folder;
pip itself reads the pip.conf (``PIP_CONFIG_FILE``), as it does for ``pip install``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_mlws.environments import machine
from jupyter_mlws.environments.bootstrap import BASE_IMAGES, DEFAULT_BASE_IMAGE, BaseImageRecipe
from jupyter_mlws.environments.machine import (
    apt_sources,
    debian_mirror,
    index_hosts,
    pip_index_urls,
)
from jupyter_mlws.errors import BuildError

REPO = Path(__file__).resolve().parents[2]

DEB822 = """\
# the security archive is listed first on purpose: debootstrap must not pick it
Types: deb
URIs: http://security.mirror.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.mirror.invalid/debian
Suites: bookworm
Components: main

Types: deb
Enabled: no
URIs: http://disabled.mirror.invalid/debian
Suites: bookworm
Components: main

Types: deb deb-src
# a comment inside a stanza
URIs: https://deb.mirror.invalid/debian
 https://second.mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE = """\
# deb http://commented.mirror.invalid/debian bookworm main
deb-src http://src.mirror.invalid/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://one.mirror.invalid/debian bookworm main contrib
deb http://trixie.mirror.invalid/debian trixie main
"""


def apt_root(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "root"
    for rel, text in files.items():
        path = root / "etc" / "apt" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


NO_OVERRIDE: dict[str, str] = {}


def test_deb822_sources_give_the_first_enabled_binary_uri_of_the_suite(tmp_path: Path) -> None:
    root = apt_root(tmp_path, {"sources.list.d/debian.sources": DEB822})
    uris = [s.uri for s in apt_sources(root)]
    assert uris == [
        "http://security.mirror.invalid/debian-security",
        "https://deb.mirror.invalid/debian",
        "https://second.mirror.invalid/debian",
    ]
    assert debian_mirror("bookworm", root=root, environ=NO_OVERRIDE) == (
        "https://deb.mirror.invalid/debian"
    )
    # another suite of the same archive: the source that lists a plain suite name
    assert debian_mirror("trixie", root=root, environ=NO_OVERRIDE) == (
        "https://deb.mirror.invalid/debian"
    )


def test_one_line_sources_list(tmp_path: Path) -> None:
    root = apt_root(tmp_path, {"sources.list": ONE_LINE})
    assert debian_mirror("bookworm", root=root, environ=NO_OVERRIDE) == (
        "http://one.mirror.invalid/debian"
    )
    assert debian_mirror("trixie", root=root, environ=NO_OVERRIDE) == (
        "http://trixie.mirror.invalid/debian"
    )


def test_apt_reading_order_and_disabled_files(tmp_path: Path) -> None:
    root = apt_root(
        tmp_path,
        {
            "sources.list": "",  # empty, as on Debian 12 images
            "sources.list.d/b.list": "deb http://b.mirror.invalid/debian bookworm main\n",
            "sources.list.d/a.sources": DEB822,
            "sources.list.d/0.list.disabled": "deb http://off.mirror.invalid/debian bookworm main\n",
            "sources.list.d/c.list": "deb cdrom:[Debian]/ bookworm main\n",
        },
    )
    origins = {Path(s.origin).name for s in apt_sources(root)}
    assert origins == {"a.sources", "b.list"}
    assert debian_mirror("bookworm", root=root, environ=NO_OVERRIDE) == (
        "https://deb.mirror.invalid/debian"
    )


def test_the_override_wins(tmp_path: Path) -> None:
    root = apt_root(tmp_path, {"sources.list.d/debian.sources": DEB822})
    env = {"MLWS_DEBIAN_MIRROR": "http://override.mirror.invalid/debian"}
    assert debian_mirror("bookworm", root=root, environ=env) == (
        "http://override.mirror.invalid/debian"
    )
    # with nothing configured at all, the override is all there is
    assert debian_mirror(root=tmp_path / "empty", environ=env) == (
        "http://override.mirror.invalid/debian"
    )


def test_no_mirror_anywhere_is_a_typed_error_naming_the_setting(tmp_path: Path) -> None:
    root = apt_root(tmp_path, {"sources.list": ONE_LINE.splitlines()[0] + "\n"})
    with pytest.raises(BuildError) as err:
        debian_mirror("bookworm", root=root, environ=NO_OVERRIDE)
    assert "MLWS_DEBIAN_MIRROR" in str(err.value)


def test_base_image_recipes_take_the_machines_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = BASE_IMAGES[DEFAULT_BASE_IMAGE]
    assert recipe.mirror is None  # nothing is written into the code
    monkeypatch.setenv("MLWS_DEBIAN_MIRROR", "http://override.mirror.invalid/debian")
    cmd = recipe.debootstrap_command(Path("/tmp/rootfs"))
    assert cmd[-3:] == ["bookworm", "/tmp/rootfs", "http://override.mirror.invalid/debian"]
    pinned = BaseImageRecipe(suite="bookworm", mirror="file:///srv/debian")
    assert pinned.debootstrap_command(Path("/r"))[-1] == "file:///srv/debian"
    assert pinned.digest != recipe.digest  # another mirror, another recipe label


# --- pip ------------------------------------------------------------------------------------
def pip_env(tmp_path: Path, conf: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without pip settings, reading ``conf`` as the pip.conf."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "MLWS_PIP"))}
    if conf is not None:
        path = tmp_path / "pip.conf"
        path.write_text(conf)
        env["PIP_CONFIG_FILE"] = str(path)
    return {**env, **extra}


PIP_CONF = """\
[global]
index-url = https://user:secret@index.corp.invalid/pypi/simple
extra-index-url =
    http://extra.corp.invalid:8080/simple
    file:///opt/local-index/simple
timeout = 60
"""


def test_pip_conf_index_and_extra_index(tmp_path: Path) -> None:
    urls = pip_index_urls(pip_env(tmp_path, PIP_CONF))
    assert urls == [
        "https://user:secret@index.corp.invalid/pypi/simple",
        "http://extra.corp.invalid:8080/simple",
        "file:///opt/local-index/simple",
    ]
    assert index_hosts(urls) == ["index.corp.invalid:443", "extra.corp.invalid:8080"]


def test_install_section_and_env_vars_beat_global(tmp_path: Path) -> None:
    conf = PIP_CONF + "\n[install]\nindex-url = https://install.corp.invalid/simple\n"
    assert pip_index_urls(pip_env(tmp_path, conf))[0] == "https://install.corp.invalid/simple"
    env = pip_env(tmp_path, conf, PIP_INDEX_URL="https://env.corp.invalid/simple",
                  PIP_EXTRA_INDEX_URL="https://env-extra.corp.invalid/simple")
    assert pip_index_urls(env) == [
        "https://env.corp.invalid/simple",
        "https://env-extra.corp.invalid/simple",
    ]


def test_pip_runs_once_while_its_configuration_is_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []
    read = machine._read_pip_config
    monkeypatch.setattr(machine, "_read_pip_config",
                        lambda env, python: runs.append(python) or read(env, python))
    env = pip_env(tmp_path, PIP_CONF)
    for _ in range(3):
        assert pip_index_urls(env)[0] == "https://user:secret@index.corp.invalid/pypi/simple"
        assert machine.pip_setting("timeout", env) == "60"
    assert len(runs) == 1
    # the same file rewritten at once (same mtime tick, maybe): its size tells
    env = pip_env(tmp_path, "[global]\nindex-url = https://other.corp.invalid/simple\n")
    assert pip_index_urls(env) == ["https://other.corp.invalid/simple"]
    assert pip_index_urls(pip_env(tmp_path, PIP_CONF, PIP_TIMEOUT="5"))[0].startswith(
        "https://user:secret@")  # another PIP_ variable: asked again
    assert len(runs) == 3


def test_the_pip_override_wins(tmp_path: Path) -> None:
    env = pip_env(tmp_path, PIP_CONF,
                  MLWS_PIP_INDEX_URL="https://a.corp.invalid/simple, https://b.corp.invalid/s")
    assert index_hosts(pip_index_urls(env)) == ["a.corp.invalid:443", "b.corp.invalid:443"]


def test_no_index_url_means_pips_own_default_with_its_file_host(tmp_path: Path) -> None:
    from pip._internal.models.index import PyPI  # what pip itself falls back to

    # (extra-index-url is emptied: the machine's global pip.conf is read too, as by pip)
    urls = pip_index_urls(pip_env(tmp_path, "[global]\ntimeout = 60\nextra-index-url =\n"))
    assert urls == [PyPI.simple_url]
    assert index_hosts(urls) == [f"{PyPI.netloc}:443", f"{PyPI.file_storage_domain}:443"]


def test_ray_cluster_script_reads_the_allow_list_from_pip(tmp_path: Path) -> None:
    script = [str(REPO / "scripts" / "ray-cluster.sh"), "proxy-hosts"]
    env = pip_env(tmp_path, PIP_CONF, PYTHONPATH=str(REPO),
                  PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run(["bash", *script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "index.corp.invalid:443,extra.corp.invalid:8080"
    env["MLWS_RAY_PROXY_HOSTS"] = "only.corp.invalid:443"
    out = subprocess.run(["bash", *script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "only.corp.invalid:443"


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_DEBIAN_MIRROR", "http://cli.mirror.invalid/debian")
    machine.main(["debian-mirror", "bookworm"])
    assert capsys.readouterr().out.strip() == "http://cli.mirror.invalid/debian"
    with pytest.raises(SystemExit):
        machine.main(["nonsense"])
