"""Job figures, each beside a baseline measured in the same run.

1. A trivial 4-cell notebook job on `local`, submit -> Completed (output stored), against
   `papermill in.ipynb out.ipynb` run directly. Target: overhead under 15 % of papermill.
2. The same job on `docker` with a cached image: submit -> Running, total, container start cost
   (a bare `docker run --rm IMAGE true`).
3. 50 jobs submitted at once to `local` with max concurrency 2: all complete, none lost or
   duplicated; total time against 25 x the single-job time.

Run: python benchmarks/bench_jobs.py [--repeat N] [--jobs 50] [--no-docker]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import make_notebook, print_table  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402


def job_times(ws: Workspace, nb: Path, compute: str, **kw: object) -> tuple[float, float]:
    t0 = time.perf_counter()
    job = ws.jobs.submit_notebook(nb, {"n": 3}, compute=compute, **kw)  # type: ignore[arg-type]
    running = None
    while True:
        j = ws.jobs.get(job.id)
        if running is None and j.status in ("Running", "Completed", "Failed"):
            running = time.perf_counter() - t0
        if j.done:
            break
        time.sleep(0.02)
    total = time.perf_counter() - t0
    assert j.status == "Completed", ws.jobs.logs(job.id)
    assert ws.jobs.paths(job.id).notebook_out.exists()
    return running or total, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--no-docker", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.init(root / "p")
        nb = make_notebook(root / "code" / "trivial.ipynb", "m = n * 2", "print(m)",
                           "total = sum(range(m))")
        job_times(ws, nb, "local")  # warm up: imports, kernel spec cache
        subprocess.run(["papermill", str(nb), str(root / "warm.ipynb")], check=True,
                       capture_output=True)

        ours, direct = [], []
        for i in range(args.repeat):  # interleaved, so load affects both alike
            t = time.perf_counter()
            subprocess.run(["papermill", str(nb), str(root / f"out{i}.ipynb"), "-p", "n", "3"],
                           check=True, capture_output=True)
            direct.append(time.perf_counter() - t)
            ours.append(job_times(ws, nb, "local")[1])
        p, o = statistics.median(direct), statistics.median(ours)
        overhead = (o - p) / p
        rows.append(("notebook job on local: median total", f"{o:.2f} s", f"{p:.2f} s (papermill)",
                     "overhead < 15 %", f"{overhead * 100:.0f} % " + ("yes" if overhead < 0.15
                                                                      else "NO")))

        # concurrency first: measured right after docker jobs, the single-job baseline is skewed
        ws.computes.create("pair", type="local", max_concurrent_jobs=2)
        single = statistics.median(job_times(ws, nb, "pair")[1] for _ in range(3))
        t0 = time.perf_counter()
        ids = [ws.jobs.submit_notebook(nb, {"n": i}, compute="pair").id for i in range(args.jobs)]
        submitted = time.perf_counter() - t0
        finished = [ws.jobs.wait(i, timeout=3600) for i in ids]
        total = time.perf_counter() - t0
        ok = sum(j.status == "Completed" for j in finished)
        listed = {j.id for j in ws.jobs.list(limit=None)}
        lost = len(set(ids) - listed)
        dup = len(ids) - len(set(ids))
        ideal = single * args.jobs / 2
        rows.append((f"{args.jobs} jobs at once, concurrency 2: total",
                     f"{total:.1f} s", f"{ideal:.1f} s ({args.jobs // 2} x single {single:.2f} s)",
                     "all complete", f"{ok}/{args.jobs} completed, {lost} lost, {dup} dup, "
                     f"ratio {total / ideal:.2f}"))
        rows.append((f"{args.jobs} jobs: time to submit all", f"{submitted:.2f} s", "", "", ""))
        if not args.no_docker:
            from jupyter_mlws.workspace import docker_client

            client = docker_client()
            ws.computes.create("box", type="docker", max_concurrent_jobs=2)
            env = "MLWS-python-3.11-minimal"
            image = ws.environments.build(env, builder="docker").image  # cached after this
            job_times(ws, nb, "box", environment=env)
            runs = [job_times(ws, nb, "box", environment=env) for _ in range(args.repeat)]
            starts = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                client.containers.run(image, ["true"], remove=True)
                starts.append(time.perf_counter() - t)
            rows.append(("notebook job on docker: submit -> Running",
                         f"{statistics.median(r[0] for r in runs):.2f} s", "", "(report)", ""))
            rows.append(("notebook job on docker: total",
                         f"{statistics.median(r[1] for r in runs):.2f} s",
                         f"{o:.2f} s (local)", "(report)", ""))
            rows.append(("container start (docker run --rm IMAGE true)",
                         f"{statistics.median(starts):.2f} s", "", "(report)", ""))

        ws.close()
    print_table(rows)


if __name__ == "__main__":
    main()
