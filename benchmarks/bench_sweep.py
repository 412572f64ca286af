"""Sweep figures, each beside a baseline measured in the same run.

1. A 20-trial notebook sweep on `local` at concurrency 2, submit -> Completed, against
   10 x the time of one notebook job (submit -> Completed) of the same notebook: two trials
   run at a time, so a sweep with no overhead of its own takes 10 job times. Target: <= 1.1.
2. The time from a trial's `run.log_metric(...)` (the time the point carries) to the moment
   `ws.jobs.sweep_view(SWEEP)` (what `mlws job show` and the monitor render) shows it.
   Target: < 1 s.

Beside 1 it prints the same 20 notebooks submitted as plain jobs at once to the same compute
(two at a time): what the machine gives two parallel notebooks, without a sweep.

Run: python benchmarks/bench_sweep.py [--trials 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import make_notebook, print_table  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402

TRAIN = "from jupyter_mlws import run\nrun.log_metric('acc', 1 / (1 + (C - 1) ** 2))"
TICKS = ("import time\nfrom jupyter_mlws import run\n"
         "for i in range(1, 9):\n    run.log_metric('acc', i / 10, step=i)\n    time.sleep(0.7)")


def one_job(ws: Workspace, nb: Path) -> float:
    t0 = time.perf_counter()
    job = ws.jobs.submit_notebook(nb, {"C": 0.5}, compute="two")
    job = ws.jobs.wait(job.id, poll_s=0.02)
    assert job.status == "Completed", ws.jobs.logs(job.id)
    return time.perf_counter() - t0


def batch_time(ws: Workspace, nb: Path, n: int) -> float:
    t0 = time.perf_counter()
    jobs = [ws.jobs.submit_notebook(nb, {"C": i / n}, compute="two") for i in range(n)]
    for job in jobs:
        assert ws.jobs.wait(job.id, poll_s=0.02).status == "Completed"
    return time.perf_counter() - t0


def sweep_spec(nb: Path, trials: int, concurrent: int) -> dict[str, object]:
    return {"trial": {"notebook": str(nb)},
            "search_space": {"C": {"type": "uniform", "min_value": 0, "max_value": 2}},
            "sampling_algorithm": {"type": "random", "seed": 1},
            "objective": {"goal": "maximize", "primary_metric": "acc"},
            "limits": {"max_total_trials": trials, "max_concurrent_trials": concurrent}}


def sweep_time(ws: Workspace, nb: Path, trials: int) -> float:
    t0 = time.perf_counter()
    job = ws.jobs.submit_sweep(sweep_spec(nb, trials, 2), compute="two")
    job = ws.jobs.wait(job.id, poll_s=0.02)
    took = time.perf_counter() - t0
    view = ws.jobs.sweep_view(job.id)
    assert job.status == "Completed" and len(view.trials) == trials, job.error
    assert all(t.status == "Completed" for t in view.trials)
    return took


def metric_latencies(ws: Workspace, nb: Path) -> list[float]:
    """Per logged point: when the sweep view first showed it, minus when it was logged."""
    job = ws.jobs.submit_sweep(sweep_spec(nb, 1, 1), compute="two")
    seen: dict[str, float] = {}
    while not ws.jobs.get(job.id).done:
        view = ws.jobs.sweep_view(job.id)
        now = time.time()
        for t in view.trials:
            for step in t.values:
                seen.setdefault(step, now)
        time.sleep(0.02)
    trial = ws.jobs.sweep_view(job.id).trials[0]
    logged = {str(m.step): m.at.timestamp() for m in ws.jobs.metrics(str(trial.job))}
    return [seen[s] - logged[s] for s in seen if s in logged]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        ws.computes.create("two", type="local", max_concurrent_jobs=2)
        nb = make_notebook(Path(tmp) / "nb" / "train.ipynb", TRAIN, parameters="C = 1.0")
        ticks = make_notebook(Path(tmp) / "nb2" / "ticks.ipynb", TICKS, parameters="C = 1.0")
        one_job(ws, nb)  # warm the kernel and imports once
        single = statistics.median(one_job(ws, nb) for _ in range(args.repeat))
        swept = sweep_time(ws, nb, args.trials)
        batch = batch_time(ws, nb, args.trials)
        baseline = single * args.trials / 2
        ratio = swept / baseline
        lat = metric_latencies(ws, nb=ticks)
        ws.close()
    print(f"one notebook job: {single:.2f} s (median of {args.repeat})")
    print_table([
        (f"{args.trials}-trial sweep, concurrency 2", f"{swept:.1f} s",
         f"{args.trials // 2} x job = {baseline:.1f} s", "ratio <= 1.10",
         f"{ratio:.2f} {'yes' if ratio <= 1.1 else 'no'}"),
        (f"{args.trials}-trial sweep vs {args.trials} jobs at once", f"{swept:.1f} s",
         f"{batch:.1f} s", "(context)", f"{swept / batch:.2f}"),
        ("log_metric -> sweep table (median)", f"{statistics.median(lat):.3f} s",
         f"max {max(lat):.3f} s over {len(lat)} points", "< 1 s",
         "yes" if max(lat) < 1.0 else "no"),
    ])


if __name__ == "__main__":
    main()
