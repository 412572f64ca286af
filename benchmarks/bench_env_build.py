"""How fast environments resolve and build (a real Docker engine; PyPI reachable).

Prints a table ``measure | value | target | ok``:

(a) a cache hit (hash + one image inspect + return), p50 and p95 over ``--calls`` calls;
(b) a cold build of a definition with two pip packages (its images removed first, built with
    ``no_cache``; the base image is kept) against a rebuild after changing one pip pin;
(c) the same definition materialized as a venv, first and second time.

Usage: ``PYTHONPATH=. python benchmarks/bench_env_build.py [--base IMAGE] [--calls N] [--keep]``
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker
import docker.errors

from jupyter_mlws.assets.environment import DEFAULT_BASE_IMAGE, EnvironmentSpec
from jupyter_mlws.environments.docker_builder import DockerBuilder
from jupyter_mlws.environments.venv_builder import VenvMaterializer

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
    args = parser.parse_args()

    client = docker.from_env()
    try:
        client.images.get(args.base)
    except docker.errors.ImageNotFound:
        print(f"The base image {args.base} is missing: run `mlws image bootstrap` first.")
        return 2

    rows: list[tuple[str, str, str, bool]] = []
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
        rows.append(("(c) venv, first time", f"{t_first:.2f} s", "-", True))
        rows.append(("(c) venv, second time", f"{t_second:.2f} ms", "< 50 ms", t_second < 50))

        if not args.keep:
            for spec in (a, b):
                remove(client, builder.image_ref(spec))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}} | {'value':>10} | {'target':>8} | ok")
    print(f"{'-' * width}-+-{'-' * 10}-+-{'-' * 8}-+---")
    for measure, value, target, ok in rows:
        print(f"{measure:<{width}} | {value:>10} | {target:>8} | {'yes' if ok else 'NO'}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
