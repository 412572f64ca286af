"""Ray cluster figures, each beside a baseline measured in the same run.

1. A trivial notebook job on the worker node of a two-node Ray cluster: submit -> Running and
   total, cold (Ray builds the runtime env: an environment with a pip requirement the cluster has
   not seen) and warm (the same environment again), beside the same job on ``local`` (cold: the
   environment's virtualenv is built; warm: it is cached). Also without an environment.
2. Four 10-second notebook jobs on two single-CPU nodes (max_concurrent_jobs 2, no node
   targeting): wall time against the same four run one after another. Target ratio <= 0.6.

Needs root for the cluster: it is started with ``scripts/ray-cluster.sh up`` unless it is up
already (and then stopped again at the end, unless --keep-cluster).

Run: python benchmarks/bench_ray.py [--repeat N] [--keep-cluster] [--skip-local-cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import make_notebook, print_table  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ray-cluster.sh"
STATE = Path(os.environ.get("MLWS_RAY_STATE", "/tmp/mlws-ray"))
TOKEN_ENV = "MLWS_BENCH_RAY_TOKEN"


def job_times(ws: Workspace, nb: Path, compute: str, **kw: object) -> tuple[float, float]:
    """(submit -> Running, submit -> final) in seconds."""
    t0 = time.perf_counter()
    job = ws.jobs.submit_notebook(nb, {"n": 3}, compute=compute, **kw)  # type: ignore[arg-type]
    running = None
    while True:
        j = ws.jobs.get(job.id)
        if running is None and j.status in ("Running", "Completed", "Failed", "Canceled"):
            running = time.perf_counter() - t0
        if j.done:
            break
        time.sleep(0.02)
    total = time.perf_counter() - t0
    assert j.status == "Completed", ws.jobs.logs(job.id)
    return running or total, total


def fmt(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} s / {pair[1]:.2f} s"


def median_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep-cluster", action="store_true")
    ap.add_argument("--skip-local-cold", action="store_true",
                    help="do not build the local virtualenv of the cold environment")
    args = ap.parse_args()

    was_up = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
    t = time.perf_counter()
    up = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True)
    if up.returncode != 0:
        sys.exit(f"the Ray cluster did not start:\n{up.stderr[-3000:]}")
    cluster_start = time.perf_counter() - t
    address = up.stdout.strip().splitlines()[-1]
    token_file = STATE / "auth_token"
    settings: dict[str, object] = {}
    if token_file.exists():
        os.environ[TOKEN_ENV] = token_file.read_text().strip()
        settings["token_env"] = TOKEN_ENV
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            os.environ["MLWS_ENVS_DIR"] = str(root / "envs")  # local venvs start cold too
            ws = Workspace.init(root / "p")
            settings["shared_paths"] = [str(root)]
            ws.computes.create("ray-worker", type="ray", address=address, max_concurrent_jobs=2,
                               settings={**settings, "resources": {"worker": 1}})
            ws.computes.create("ray", type="ray", address=address, max_concurrent_jobs=2,
                               settings=settings)
            nb = make_notebook(root / "code" / "trivial.ipynb", "m = n * 2", "print(m)",
                               "total = sum(range(m))")
            # an environment no node has built yet: the != clause only changes its identity
            nonce = int(time.time())
            env = ws.environments.create(
                "bench-cold", pip_requirements=["papermill", "ipykernel",
                                                f"termcolor!=0.0.{nonce}"])

            job_times(ws, nb, "local")  # imports, kernel spec cache
            ray_cold = job_times(ws, nb, "ray-worker", environment=env.ref)
            ray_warm = median_pair([job_times(ws, nb, "ray-worker", environment=env.ref)
                                    for _ in range(args.repeat)])
            ray_bare = median_pair([job_times(ws, nb, "ray-worker")
                                    for _ in range(args.repeat)])
            local_bare = median_pair([job_times(ws, nb, "local") for _ in range(args.repeat)])
            local_cold = None if args.skip_local_cold else job_times(ws, nb, "local",
                                                                     environment=env.ref)
            local_warm = median_pair([job_times(ws, nb, "local", environment=env.ref)
                                      for _ in range(args.repeat)]) \
                if not args.skip_local_cold else None

            rows.append(("cluster start (scripts/ray-cluster.sh up)",
                         f"{cluster_start:.1f} s" + (" (was up)" if was_up else ""), "", "(report)",
                         ""))
            rows.append(("trivial notebook, cold env: Running / total",
                         fmt(ray_cold), (fmt(local_cold) + " (local, venv built)")
                         if local_cold else "(skipped)", "(report)", ""))
            rows.append(("trivial notebook, warm env: Running / total", fmt(ray_warm),
                         (fmt(local_warm) + " (local)") if local_warm else "(skipped)",
                         "(report)", ""))
            rows.append(("trivial notebook, no env: Running / total", fmt(ray_bare),
                         fmt(local_bare) + " (local)", "(report)",
                         f"+{ray_bare[1] - local_bare[1]:.2f} s on Ray"))

            sleepy = make_notebook(root / "code" / "sleepy.ipynb", "import time\ntime.sleep(10)")
            t0 = time.perf_counter()
            ids = [ws.jobs.submit_notebook(sleepy, {"n": i}, compute="ray").id for i in range(4)]
            done = [ws.jobs.wait(i, timeout=600) for i in ids]
            parallel = time.perf_counter() - t0
            assert all(j.status == "Completed" for j in done), [j.error for j in done]
            nodes = set()
            for i in ids:
                for line in ws.jobs.logs(i).splitlines():
                    if " on node " in line and line.startswith("[mlws] Ray:"):
                        nodes.add(line.split(" on node ")[1].split()[0])
            t0 = time.perf_counter()
            for i in range(4):
                j = ws.jobs.wait(ws.jobs.submit_notebook(sleepy, {"n": i}, compute="ray").id,
                                 timeout=600)
                assert j.status == "Completed", j.error
            serial = time.perf_counter() - t0
            ratio = parallel / serial
            rows.append(("4 x 10 s notebooks, 2 single-CPU nodes: wall",
                         f"{parallel:.1f} s (nodes {', '.join(sorted(nodes))})",
                         f"{serial:.1f} s (4 in a row)", "ratio <= 0.6",
                         f"{ratio:.2f} " + ("yes" if ratio <= 0.6 else "NO")))
            ws.close()
    finally:
        if not was_up and not args.keep_cluster:
            subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True)
    print_table(rows)


if __name__ == "__main__":
    main()
