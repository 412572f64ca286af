"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 of ``samples`` (seconds)."""
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return p50, p95


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ms(seconds: float) -> str:
    if seconds < 0.0001:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1000:.2f} ms"


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    headers = ("measure", "jupyter_mlws", "baseline", "target", "ok")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def make_notebook(path: Path, *cells: str, parameters: str = "n = 1") -> Path:
    """A small benchmark notebook: a ``parameters`` cell, then ``cells``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def team_servers(folder: Path) -> str:
    """Start PostgreSQL and SeaweedFS with ``scripts/team-servers.sh up FOLDER``, export their
    S3 settings into this process and return the store URI."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "team-servers.sh"
    subprocess.run(["bash", str(script), "up", str(folder)], check=True, capture_output=True,
                   timeout=300)
    env: dict[str, str] = {}
    for line in (folder / "env").read_text().splitlines():
        key, value = line[len("export "):].split("=", 1)
        env[key] = value
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION"):
        os.environ[key] = env[key]
    return env["MLWS_STORE_URI"]
