"""Where this machine gets its packages from: apt's Debian mirror and pip's package index.

Nothing here names a host: a user behind a corporate mirror works unchanged, because the answers
come from the machine's own configuration.

- :func:`debian_mirror` (what ``debootstrap`` fetches base images from): the environment variable
  ``MLWS_DEBIAN_MIRROR`` when set; else the first ``deb`` source apt is configured with, read in
  apt's own order - ``/etc/apt/sources.list`` (one-line format), then the files of
  ``/etc/apt/sources.list.d`` in name order (``*.list`` one-line, ``*.sources`` deb822). A source
  that lists the suite itself (``bookworm``, not ``bookworm-security``) is preferred.
- :func:`pip_index_urls` (what the Ray worker's proxy lets through): ``MLWS_PIP_INDEX_URL``
  (one or more URLs, separated by spaces or commas) when set; else pip's configuration as
  ``pip config list`` reports it (``PIP_INDEX_URL``/``PIP_EXTRA_INDEX_URL``, then the ``install``
  and ``global`` sections of every pip.conf), ``index-url`` first, then ``extra-index-url``. With
  no ``index-url`` configured, pip's built-in default index is asked of pip itself.
- :func:`index_hosts`: the ``host:port`` pairs those URLs reach (``file://`` URLs reach none).

``python -m jupyter_mlws.environments.machine debian-mirror [SUITE]`` and ``... pip-index-hosts``
print the answers (``scripts/ray-cluster.sh`` uses the second).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jupyter_mlws.errors import BuildError

__all__ = [
    "DEBIAN_MIRROR_ENV",
    "PIP_INDEX_ENV",
    "AptSource",
    "apt_sources",
    "debian_mirror",
    "index_hosts",
    "pip_index_urls",
    "pip_setting",
]

DEBIAN_MIRROR_ENV = "MLWS_DEBIAN_MIRROR"
PIP_INDEX_ENV = "MLWS_PIP_INDEX_URL"
#: URI schemes debootstrap can fetch from (``mirror+``, ``cdrom:``, ``tor+`` are apt-only).
_DEBOOTSTRAP_SCHEMES = ("http", "https", "ftp", "file")
#: pip reads these sections for ``pip install``, the later overriding the earlier.
_PIP_SECTIONS = (":env:", "install", "global")


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` source apt is configured with."""

    uri: str
    suites: tuple[str, ...]
    origin: str  # the file it came from


def apt_sources(root: Path = Path("/")) -> list[AptSource]:
    """The enabled ``deb`` (binary) sources under ``root/etc/apt``, in apt's reading order."""
    apt = root / "etc" / "apt"
    files = [apt / "sources.list"]
    parts = apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    found: list[AptSource] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        parse = _parse_deb822 if path.suffix == ".sources" else _parse_one_line
        found += [AptSource(uri, suites, str(path)) for uri, suites in parse(text)]
    return [s for s in found if urlsplit(s.uri).scheme in _DEBOOTSTRAP_SCHEMES]


def debian_mirror(
    suite: str | None = None,
    *,
    root: Path = Path("/"),
    environ: Mapping[str, str] | None = None,
) -> str:
    """The Debian mirror to debootstrap ``suite`` from (see the module docstring).

    Raises:
        BuildError: no override is set and apt has no usable ``deb`` source.
    """
    env = os.environ if environ is None else environ
    override = env.get(DEBIAN_MIRROR_ENV, "").strip()
    if override:
        return override
    sources = apt_sources(root)
    if not sources:
        raise BuildError(
            "No Debian mirror is configured on this machine (apt has no `deb` source).",
            step="resolve",
            hint=f"Set {DEBIAN_MIRROR_ENV} to the URL of a Debian mirror.",
        )
    exact = [s for s in sources if suite and suite in s.suites]
    codename = [s for s in sources if any(_is_codename(x) for x in s.suites)]
    return (exact or codename or sources)[0].uri


def pip_index_urls(
    environ: Mapping[str, str] | None = None, *, python: str | None = None
) -> list[str]:
    """The package index URLs pip uses: ``index-url`` first, then ``extra-index-url``."""
    env = dict(os.environ if environ is None else environ)
    override = env.get(PIP_INDEX_ENV, "").strip()
    if override:
        return [u for u in re.split(r"[\s,]+", override) if u]
    config = _pip_config(env, python or sys.executable)
    index = _pip_value(config, "index-url")
    urls = [index] if index else _pip_default_index(python or sys.executable)
    return urls + (_pip_value(config, "extra-index-url") or "").split()


def pip_setting(name: str, environ: Mapping[str, str] | None = None, *,
                python: str | None = None) -> str | None:
    """One value of pip's configuration (``find-links``, ``cert``, ``constraint``...), read as
    ``pip install`` does (environment, then the ``install`` and ``global`` sections)."""
    env = dict(os.environ if environ is None else environ)
    return _pip_value(_pip_config(env, python or sys.executable), name)


def index_hosts(urls: Iterable[str]) -> list[str]:
    """The ``host:port`` pairs the network URLs among ``urls`` reach, each once, in order.

    pip's default index keeps its files on another host; that host is added after it.
    """
    hosts: list[str] = []
    for url in urls:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        for item in (f"{host}:{port}", *_file_hosts(parts.hostname)):
            if item not in hosts:
                hosts.append(item)
    return hosts


# --- apt's two formats ---------------------------------------------------------------------------
def _parse_one_line(text: str) -> Iterable[tuple[str, tuple[str, ...]]]:
    """``deb [opt=val ...] URI SUITE [COMPONENT ...]`` lines (``deb-src`` and comments skipped)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # options
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            yield words[1], (words[2],)


def _parse_deb822(text: str) -> Iterable[tuple[str, tuple[str, ...]]]:
    """Stanzas of ``Types:``, ``URIs:``, ``Suites:``... (``Enabled: no`` ones skipped)."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1].isspace() and key:  # a continuation line
                fields[key] += " " + raw.strip()
                continue
            name, sep, value = raw.partition(":")
            if sep:
                key = name.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        suites = tuple(fields.get("suites", "").split())
        for uri in fields.get("uris", "").split():
            yield uri, suites


def _is_codename(suite: str) -> bool:
    return bool(re.fullmatch(r"[a-z]+", suite))


# --- pip -------------------------------------------------------------------------------------------
#: What ``pip config list`` depends on besides the interpreter: its variables and files.
_PIP_CONFIG_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "VIRTUAL_ENV")


def _pip_config(env: dict[str, str], python: str) -> dict[str, str]:
    """``pip config list`` as ``{"section.key": value}`` (empty when pip cannot say).

    Run once while what it reads is unchanged (the same ``PIP_*`` and folder variables, the
    same mtime, size and inode of each of pip's configuration files): a build asks for several
    settings, and each run starts pip (a quarter of a second)."""
    key = (python, tuple(sorted((k, v) for k, v in env.items() if k.startswith("PIP_") or
                                k in _PIP_CONFIG_VARS)), _config_stamps(env, python))
    found = _PIP_CONFIGS.get(key)
    if found is None:
        found = _PIP_CONFIGS[key] = _read_pip_config(env, python)
        while len(_PIP_CONFIGS) > 8:
            _PIP_CONFIGS.pop(next(iter(_PIP_CONFIGS)))
    return dict(found)


_PIP_CONFIGS: dict[tuple[object, ...], dict[str, str]] = {}


def _config_stamps(env: Mapping[str, str], python: str) -> tuple[tuple[object, ...], ...]:
    """The mtime, size and inode of each file pip may read its configuration from."""
    home = Path(env.get("HOME") or Path.home())
    xdg = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    paths = [Path("/etc/pip.conf"), *[Path(d) / "pip" / "pip.conf" for d in dirs if d],
             home / ".pip" / "pip.conf", xdg / "pip" / "pip.conf",
             Path(python).parent.parent / "pip.conf"]
    if env.get("PIP_CONFIG_FILE"):
        paths.append(Path(env["PIP_CONFIG_FILE"]))
    out: list[tuple[object, ...]] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((str(path),))
    return tuple(out)


def _read_pip_config(env: dict[str, str], python: str) -> dict[str, str]:
    try:
        proc = subprocess.run(
            [python, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        try:
            out[key.strip()] = str(ast.literal_eval(value.strip()))
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip().strip("'\"")
    return out


def _pip_value(config: Mapping[str, str], name: str) -> str | None:
    for section in _PIP_SECTIONS:
        value = config.get(f"{section}.{name}")
        if value:
            return value
    return None


_PIP_DEFAULT_SCRIPT = (
    "from pip._internal.models.index import PyPI; "
    "print(PyPI.simple_url); print(PyPI.file_storage_domain)"
)


@functools.lru_cache(maxsize=8)
def _pip_default(python: str) -> tuple[str, str] | None:
    """pip's built-in default index URL and the host of its files, asked of pip itself."""
    try:
        proc = subprocess.run(
            [python, "-c", _PIP_DEFAULT_SCRIPT], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.split()
    return (lines[0], lines[1]) if proc.returncode == 0 and len(lines) == 2 else None


def _pip_default_index(python: str) -> list[str]:
    default = _pip_default(python)
    return [default[0]] if default else []


def _file_hosts(hostname: str) -> list[str]:
    """The host pip's default index serves its files from, when ``hostname`` is that index."""
    default = _pip_default(sys.executable)
    if default and urlsplit(default[0]).hostname == hostname:
        return [f"{default[1]}:443"]
    return []


def main(argv: list[str] | None = None) -> None:
    """Print the Debian mirror (``debian-mirror [SUITE]``) or the index hosts (``pip-index-hosts``)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["debian-mirror"] and len(args) <= 2:
            print(debian_mirror(args[1] if len(args) == 2 else None))
        elif args == ["pip-index-hosts"]:
            print(",".join(index_hosts(pip_index_urls())))
        else:
            print("usage: machine debian-mirror [SUITE] | pip-index-hosts", file=sys.stderr)
            raise SystemExit(2)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
