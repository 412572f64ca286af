"""uv (a fast pip-compatible resolver/installer, shipped as a binary wheel on PyPI) for builds.

Why uv: it resolves and installs several times faster than pip and ``uv pip compile
--generate-hashes`` writes a lock with the hashes of *every* file of each pinned release (so the
lock installs on other platforms too), where pip's ``--report`` only knows the file it installed.
It is optional (the ``uv`` extra): without it the builders use pip.

uv does not read pip's configuration, so the index, extra indexes, find-links, the CA bundle
and constraint files pip is configured with on this machine are handed to it explicitly
(:func:`uv_environment`); no host is ever written here. ``unsafe-best-match`` makes uv pick
across indexes the way pip does (the best version on any of them).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import threading
from collections.abc import Mapping

from jupyter_mlws.environments.locks import one_line_requirements
from jupyter_mlws.environments.machine import pip_index_urls, pip_setting

__all__ = [
    "BUILD_TOOL_ENV",
    "compiled_lock_lines",
    "find_uv",
    "image_uv_environment",
    "use_uv",
    "uv_environment",
]

#: ``pip`` or ``uv``: which installer builds use (default: uv when it is there, else pip).
BUILD_TOOL_ENV = "MLWS_BUILD_TOOL"


def find_uv() -> str | None:
    """The ``uv`` binary: the one the ``uv`` package installed, else one on ``PATH``; or
    ``None``. (The package's is the real executable; ``PATH`` may hold a shim script.)"""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found, unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def use_uv(default: bool) -> bool:
    """Whether builds use uv: ``MLWS_BUILD_TOOL`` (``uv``/``pip``) when set, else ``default``;
    never when uv is not installed."""
    tool = os.environ.get(BUILD_TOOL_ENV, "").strip().lower()
    wanted = tool == "uv" if tool else default
    return wanted and find_uv() is not None


def image_uv_environment(python: str | None = None) -> dict[str, str]:
    """uv's settings inside an image build: the network indexes and find-links of this
    machine's pip configuration (``file:`` ones are not in the image)."""
    urls = [u for u in pip_index_urls(python=python or sys.executable)
            if u.startswith(("http://", "https://"))]
    env = {"UV_INDEX_STRATEGY": "unsafe-best-match", "UV_NO_PROGRESS": "1",
           "UV_NO_CACHE": "1"}
    if urls:
        env["UV_INDEX_URL"] = urls[0]
    if len(urls) > 1:
        env["UV_EXTRA_INDEX_URL"] = " ".join(urls[1:])
    links = [u for u in (pip_setting("find-links", python=python) or "").split()
             if u.startswith(("http://", "https://"))]
    if links:
        env["UV_FIND_LINKS"] = ",".join(links)
    return env


def _pip_settings(python: str) -> tuple[tuple[str, str], ...]:
    """This machine's pip configuration as uv settings, read once per interpreter: a caller
    that comes while another thread reads it (a venv build reads it beside its first steps)
    waits for that reading instead of starting pip again."""
    with _SETTINGS_LOCK:
        return _read_pip_settings(python)


_SETTINGS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _read_pip_settings(python: str) -> tuple[tuple[str, str], ...]:
    urls = pip_index_urls(python=python)
    out: list[tuple[str, str]] = []
    if urls:
        out.append(("UV_INDEX_URL", urls[0]))
    if len(urls) > 1:
        out.append(("UV_EXTRA_INDEX_URL", " ".join(urls[1:])))
    links = pip_setting("find-links", python=python)
    if links:
        out.append(("UV_FIND_LINKS", ",".join(links.split())))
    constraint = pip_setting("constraint", python=python)
    if constraint:
        out.append(("UV_CONSTRAINT", " ".join(constraint.split())))
    cert = pip_setting("cert", python=python)
    if cert:
        out.append(("SSL_CERT_FILE", cert))
    return tuple(out)


def uv_environment(base: Mapping[str, str] | None = None, *,
                   python: str | None = None) -> dict[str, str]:
    """``base`` (default: ``os.environ``) plus this machine's pip configuration for uv."""
    env = dict(os.environ if base is None else base)
    for key, value in _pip_settings(python or sys.executable):
        env.setdefault(key, value)
    env.setdefault("UV_INDEX_STRATEGY", "unsafe-best-match")
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def compiled_lock_lines(text: str) -> list[str]:
    """``uv pip compile --generate-hashes`` output as one ``name==version --hash=...`` line
    per package (continuations joined, ``# via`` comments dropped)."""
    return one_line_requirements(text.splitlines())
