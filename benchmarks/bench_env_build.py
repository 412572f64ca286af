"""How fast environments resolve and build (a real Docker engine; PyPI reachable).

Prints a table ``measure | value | target | ok``:

(a) a cache hit (hash + one image inspect + return), p50 and p95 over ``--calls`` calls;
(b) a cold build of a definition with two pip packages (its images removed first, built with
    ``no_cache``; the base image is kept) against a rebuild after changing one pip pin;
(c) the same definition materialized as a venv, first and second time;
(d) cold builds (no cache) of unpinned packages with pip and with uv, as a venv and as an image
    (venvs with their bytecode compiled in the background, the default, and in the build; for
    each, the build plus a first job's import of the packages);
(e) a rebuild from the recorded lock (after a prune) against the cold build that made the lock
    (the builders' wheelhouse is fresh per run: the cold build includes keeping the lock's files,
    the image rebuild installs them from the wheelhouse server, see docker_wheels.py; the image
    rebuild is timed as by default (uv installs the served files when the host has it) and with
    ``MLWS_BUILD_TOOL=pip``, both against the cold pip build);
(f) ``mlws image patch`` of a copy of the base, then rebuilding 5 dependent environments on it
    from their locks, against building them cold.

Usage: ``PYTHONPATH=. python benchmarks/bench_env_build.py [--base IMAGE] [--calls N] [--keep]
[--skip-envtime | --only venv|docker|patch]``; the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors

from jupyter_mlws.assets.environment import DEFAULT_BASE_IMAGE, EnvironmentSpec
from jupyter_mlws.environments.docker_builder import DockerBuilder
from jupyter_mlws.environments.patching import patch_base
from jupyter_mlws.environments.pyc_cache import bytecode_pass_running, wait_for_bytecode
from jupyter_mlws.environments.uv_tool import find_uv
from jupyter_mlws.environments.venv_builder import BYTECODE_ENV, VenvMaterializer, venv_python

PINS_A = ["six==1.16.0", "idna==3.7"]
PINS_B = ["six==1.16.0", "idna==3.6"]  # one pin changed


def quiet(_line: str) -> None:
    pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def remove(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_image(ref, force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DEFAULT_BASE_IMAGE, help="base image (kept)")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the images built")
    parser.add_argument("--skip-envtime", action="store_true", help="skip (d)-(f)")
    parser.add_argument("--only", choices=["venv", "docker", "patch"],
                        help="run only this part of (d)-(f) (skips (a)-(c))")
    args = parser.parse_args()

    client = docker.from_env()
    try:
        client.images.get(args.base)
    except docker.errors.ImageNotFound:
        print(f"The base image {args.base} is missing: run `mlws image bootstrap` first.")
        return 2

    rows: list[tuple[str, str, str, bool]] = []
    if args.only:
        with tempfile.TemporaryDirectory(prefix="mlws-bench-") as tmp:
            part = {"venv": lambda: _venv_rows(Path(tmp)),
                    "docker": lambda: _docker_rows(client, args.base, Path(tmp), args.keep),
                    "patch": lambda: _patch_rows(client, args.base, Path(tmp), args.keep)}
            return print_rows(part[args.only]())
    with tempfile.TemporaryDirectory(prefix="mlws-bench-") as tmp:
        builder = DockerBuilder(client, lock_dir=Path(tmp) / "locks")
        a = EnvironmentSpec(name="bench", image=args.base, pip_requirements=PINS_A)
        b = EnvironmentSpec(name="bench", image=args.base, pip_requirements=PINS_B)
        for spec in (a, b):
            remove(client, builder.image_ref(spec))

        # (b) cold build, then a rebuild after changing one pin
        t0 = time.perf_counter()
        cold = builder.build(a, env_name="bench", env_version="1", log=quiet, no_cache=True)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = builder.build(b, env_name="bench", env_version="2", log=quiet)
        t_pin = time.perf_counter() - t0
        assert not cold.cached and not warm.cached

        # (a) cache-hit resolve
        times = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            hit = builder.lookup(a)
            times.append((time.perf_counter() - t0) * 1000)
            assert hit is not None and hit.cached
        p50, p95 = statistics.median(times), percentile(times, 95)
        rows.append(("(a) cache-hit resolve p50", f"{p50:.2f} ms", "-", True))
        rows.append(("(a) cache-hit resolve p95", f"{p95:.2f} ms", "< 50 ms", p95 < 50))
        ratio = t_pin / t_cold
        rows.append(("(b) cold build, 2 pip packages", f"{t_cold:.2f} s", "-", True))
        rows.append(("(b) rebuild after one pin change", f"{t_pin:.2f} s", "-", True))
        rows.append(("(b) rebuild / cold", f"{ratio:.2f}", "< 0.4", ratio < 0.4))

        # (c) the same definition as a venv, twice
        venvs = VenvMaterializer(Path(tmp) / "envs")
        t0 = time.perf_counter()
        first = venvs.build(a, log=quiet)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = venvs.build(a, log=quiet)
        t_second = (time.perf_counter() - t0) * 1000
        assert not first.cached and second.cached
        wait_for_bytecode(Path(first.image), 600)  # (its pass would run beside what follows)
        rows.append(("(c) venv, first time", f"{t_first:.2f} s", "-", True))
        rows.append(("(c) venv, second time", f"{t_second:.2f} ms", "< 50 ms", t_second < 50))

        if not args.keep:
            for spec in (a, b):
                remove(client, builder.image_ref(spec))
        if not args.skip_envtime:
            rows += envtime_rows(client, args.base, Path(tmp), keep=args.keep)

    return print_rows(rows)


_LOAD_AT_START = os.getloadavg()


def print_rows(rows: list[tuple[str, str, str, bool]]) -> int:
    """Print the table (with the load averages at the start and now); 0 when every target
    is met."""
    print(f"load average (1, 5, 15 min) at start: {' '.join(f'{x:.2f}' for x in _LOAD_AT_START)}"
          f"; at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}} | {'value':>10} | {'target':>8} | ok")
    print(f"{'-' * width}-+-{'-' * 10}-+-{'-' * 8}-+---")
    for measure, value, target, ok in rows:
        print(f"{measure:<{width}} | {value:>10} | {target:>8} | {'yes' if ok else 'NO'}")
    return 0 if all(r[3] for r in rows) else 1


UNPINNED = ["numpy", "pandas", "requests"]  # unpinned, real-sized wheels


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _lock_source(text: str | None) -> Any:
    return lambda _python: text


@contextlib.contextmanager
def _bytecode_mode(mode: str) -> Any:
    """Venv builds with their bytecode in the ``background`` (the default) or in the
    ``build`` (MLWS_VENV_BYTECODE)."""
    old = os.environ.get(BYTECODE_ENV)
    os.environ[BYTECODE_ENV] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(BYTECODE_ENV, None)
        else:
            os.environ[BYTECODE_ENV] = old


def _first_import(venv: Path) -> float:
    """Seconds a first job's ``import numpy, pandas, requests`` takes in the new venv, with
    what a job gets (no bytecode written while the venv's pass runs: see job_venv.py)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    if bytecode_pass_running(venv):
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    t0 = time.perf_counter()
    subprocess.run([str(venv_python(venv)), "-c", "import numpy, pandas, requests"], env=env,
                   check=True)
    return time.perf_counter() - t0


def _cold_venv(tmp: Path, spec: EnvironmentSpec, tool: str, mode: str,
               name: str) -> tuple[float, float, float, Any, VenvMaterializer]:
    """One cold build: its seconds, a first import's after it, when its bytecode pass ended
    after the build (0 in the build mode), the result and the builder."""
    venvs = VenvMaterializer(tmp / name, use_uv=tool == "uv")
    os.sync()  # the last build's files written out first, not while this one is timed
    with _bytecode_mode(mode):
        t_build, result = _timed(lambda: venvs.build(spec, log=quiet, no_cache=True))
        t_import = _first_import(Path(result.image))
        t0 = time.perf_counter()
        assert wait_for_bytecode(Path(result.image), 600) is not None
        t_pass = time.perf_counter() - t0 + t_import
    return t_build, t_import, t_pass, result, venvs


def _venv_rows(tmp: Path, rounds: int = 3) -> list[tuple[str, str, str, bool]]:
    """Cold (no cache) builds with pip and uv, taking turns for ``rounds`` rounds (this
    machine's index and disk vary from one minute to the next: the medians are compared),
    their bytecode in the background (the default); one more round with it in the build.
    After each build, the first import of the packages (a job's start). Then, as after
    `mlws env prune`, a venv removed and made again from the lock (caches allowed, as a
    user's rebuild has them)."""
    rows: list[tuple[str, str, str, bool]] = []
    spec = EnvironmentSpec(name="benchv", pip_requirements=UNPINNED)
    tools = ["pip", "uv"] if find_uv() is not None else ["pip"]
    if find_uv() is None:
        rows.append(("(d) venv cold, uv", "missing", "-", False))
    cold: dict[str, list[float]] = {t: [] for t in tools}
    passes: dict[str, list[float]] = {t: [] for t in tools}
    path_s: dict[tuple[str, str], float] = {}  # build + first import
    paths: dict[str, list[float]] = {t: [] for t in tools}
    last: dict[str, tuple[Any, VenvMaterializer]] = {}
    for n in range(rounds):
        for tool in tools:
            t_build, t_import, t_pass, result, venvs = _cold_venv(
                tmp, spec, tool, "background", f"envs-{tool}-{n}")
            cold[tool].append(t_build)
            passes[tool].append(t_pass)
            paths[tool].append(t_build + t_import)
            last[tool] = (result, venvs)
    built: dict[str, float] = {}
    for tool in tools:
        t_build, t_import, _t_pass, _result, _venvs = _cold_venv(tmp, spec, tool, "build",
                                                                  f"envs-{tool}-build")
        built[tool] = t_build
        path_s[tool, "build"] = t_build + t_import
    median: dict[str, float] = {}
    for tool in tools:
        path_s[tool, "background"] = statistics.median(paths[tool])
        median[tool] = statistics.median(cold[tool])
        each = " ".join(f"{t:.2f}" for t in cold[tool])
        rows.append((f"(d) venv cold, {tool} (median of {rounds}: {each})",
                     f"{median[tool]:.2f} s", "-", True))
        rows.append((f"(d) ... its bytecode pass ended after the build, {tool}",
                     f"{statistics.median(passes[tool]):.2f} s", "-", True))
        rows.append((f"(d) venv cold, {tool}, bytecode in the build ({BYTECODE_ENV}=build)",
                     f"{built[tool]:.2f} s", "-", True))
        rows.append((f"(d) build + first import (numpy, pandas, requests), {tool}: "
                     "bytecode in the background (median) / in the build",
                     f"{path_s[tool, 'background']:.2f} / {path_s[tool, 'build']:.2f} s",
                     "(report)", True))
        result, venvs = last[tool]
        venvs.remove(spec)
        t_lock, again = _timed(lambda v=venvs, f=_lock_source(result.lock): v.build(
            spec, log=quiet, lock_for=f))
        assert again.from_lock
        assert wait_for_bytecode(Path(again.image), 600) is not None
        ratio = t_lock / median[tool]
        rows.append((f"(e) venv pruned + rebuilt from lock, {tool}", f"{t_lock:.2f} s", "-",
                     True))
        rows.append((f"(e) venv from lock / cold (median), {tool}", f"{ratio:.2f}", "<= 0.4",
                     ratio <= 0.4))
    if "uv" in tools:
        ratio = median["uv"] / median["pip"]
        rows.append(("(d) venv cold uv / pip (medians)", f"{ratio:.2f}", "<= 0.3", ratio <= 0.3))
        each = " ".join(f"{u / p:.2f}" for u, p in zip(cold["uv"], cold["pip"]))
        rows.append(("(d) ... uv / pip, round by round", each, "(report)", True))
        rows.append(("(d) venv cold uv / pip, bytecode in the build",
                     f"{built['uv'] / built['pip']:.2f}", "(report)", True))
    return rows


def _docker_rows(client: Any, base: str, tmp: Path, keep: bool) -> list[tuple[str, str, str, bool]]:
    rows: list[tuple[str, str, str, bool]] = []
    spec = EnvironmentSpec(name="benchd", image=base, pip_requirements=UNPINNED)
    builder = DockerBuilder(client, lock_dir=tmp / "locks-d")
    times: dict[str, float] = {}
    for tool in ("pip", "uv"):
        if tool == "uv" and find_uv() is None:
            continue
        os.environ["MLWS_BUILD_TOOL"] = tool
        remove(client, builder.image_ref(spec))
        times[tool], result = _timed(lambda: builder.build(spec, log=quiet, no_cache=True))
        rows.append((f"(d) image cold, {tool}", f"{times[tool]:.2f} s", "-", True))
        if tool == "pip":
            # the rebuild as a user's default does it (the lock's files served from this
            # machine and installed by uv when it is there), then with pip forced
            for installer, forced in (("default", None), ("pip forced", "pip")):
                os.environ.pop("MLWS_BUILD_TOOL", None)
                if forced:
                    os.environ["MLWS_BUILD_TOOL"] = forced
                remove(client, builder.image_ref(spec))
                t_lock, again = _timed(lambda f=_lock_source(result.lock): builder.build(
                    spec, log=quiet, lock_for=f))
                assert again.from_lock
                ratio = t_lock / times["pip"]
                rows.append((f"(e) image pruned + rebuilt from lock, {installer}",
                             f"{t_lock:.2f} s", "-", True))
                rows.append((f"(e) image from lock / cold pip, {installer}", f"{ratio:.2f}",
                             "<= 0.4" if forced is None else "-",
                             ratio <= 0.4 if forced is None else True))
    os.environ.pop("MLWS_BUILD_TOOL", None)
    if "uv" in times:
        rows.append(("(d) image uv / pip", f"{times['uv'] / times['pip']:.2f}", "-", True))
    if not keep:
        remove(client, builder.image_ref(spec))
    return rows


def _patch_rows(client: Any, base: str, tmp: Path, keep: bool) -> list[tuple[str, str, str, bool]]:
    repository = f"mlws/base-bench-{uuid.uuid4().hex[:8]}"
    client.images.get(base).tag(repository, "bench")
    copy = f"{repository}:bench"
    builder = DockerBuilder(client, lock_dir=tmp / "locks-p")
    specs = [EnvironmentSpec(name=f"dep{i}", image=copy, pip_requirements=[pkg])
             for i, pkg in enumerate(["six", "idna", "attrs", "packaging", "certifi"])]
    locks: dict[str, str | None] = {}
    try:
        t_cold = 0.0
        for spec in specs:
            took, result = _timed(lambda s=spec: builder.build(s, log=quiet, no_cache=True))
            t_cold += took
            locks[spec.env_hash()] = result.lock
        t_patch, patched = _timed(lambda: patch_base(client, copy, log=quiet, always=True))
        t_rebuild = 0.0
        for spec in specs:
            took, again = _timed(lambda s=spec: builder.build(
                s, log=quiet, refresh_base=True, lock_for=lambda _py, h=s.env_hash(): locks[h]))
            assert again.from_lock and again.base_image_id == patched.image_id
            t_rebuild += took
    finally:
        if not keep:
            for spec in specs:
                remove(client, builder.image_ref(spec))
            for image in client.images.list(name=repository):
                for tag in image.tags:  # only the copy's tags: the real base keeps its own
                    if tag.startswith(repository + ":"):
                        remove(client, tag)
    ratio = t_rebuild / t_cold
    return [
        ("(f) 5 dependants, cold builds", f"{t_cold:.2f} s", "-", True),
        (f"(f) image patch ({patched.updated} pkgs)", f"{t_patch:.2f} s", "-", True),
        ("(f) 5 dependants, rebuild on patch", f"{t_rebuild:.2f} s", "-", True),
        ("(f) rebuild / cold", f"{ratio:.2f}", "-", True),
    ]


def envtime_rows(client: Any, base: str, tmp: Path, *, keep: bool) -> list[tuple[str, str, str, bool]]:
    """(d)-(f): pip vs uv, rebuild from lock vs cold, patch + rebuild of dependants."""
    return _venv_rows(tmp) + _docker_rows(client, base, tmp, keep) + \
        _patch_rows(client, base, tmp, keep)


if __name__ == "__main__":
    sys.exit(main())
