"""Job monitor figures: how soon a line a job prints shows in ``JobMonitor``'s log tail.

A command job on `local` prints ~20 lines, each stamped with the time it was written, a quarter
of a second apart. A ``JobMonitor`` (default ``poll_s=0.5``) follows it; this script samples the
monitor's tail every 2 ms and notes when each line appears. The baseline is ``ws.jobs.stream``
(the facade's own follower, polling every 0.2 s) reading the same job in a thread. Also: what one
poll of the monitor costs (a job read, events, metrics, the new log bytes, and the widgets).
Target: a line is shown within 1 s (p95).

Run: python benchmarks/bench_monitor.py [--lines 20] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ms, percentiles, print_table  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402
from jupyter_mlws.widgets.job_monitor import JobMonitor  # noqa: E402


def printer_command(lines: int, gap: float) -> str:
    code = (f"import time\nfor i in range({lines}):\n"
            "    print(f'line {i} {time.time():.6f}', flush=True)\n"
            f"    time.sleep({gap})\n")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def stamp(line: str) -> tuple[int, float] | None:
    parts = line.split()
    if len(parts) == 3 and parts[0] == "line":
        return int(parts[1]), float(parts[2])
    return None


def run(ws: Workspace, lines: int, poll_s: float) -> tuple[list[float], list[float], list[float]]:
    job = ws.jobs.submit_command(printer_command(lines, 0.25), display_name="printer")
    seen_stream: dict[int, float] = {}

    def follow() -> None:
        for line in ws.jobs.stream(job.id, poll_s=0.2):
            s = stamp(line)
            if s is not None:
                seen_stream[s[0]] = time.time() - s[1]

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    monitor = JobMonitor(ws, job.id, poll_s=poll_s)
    seen: dict[int, float] = {}
    while not monitor.done:
        now = time.time()
        for line in monitor.log_lines:
            s = stamp(line)
            if s is not None and s[0] not in seen:
                seen[s[0]] = now - s[1]
        time.sleep(0.002)
    follower.join(timeout=30)
    assert ws.jobs.get(job.id).status == "Completed", ws.jobs.logs(job.id)
    assert len(seen) == lines, f"the monitor showed {len(seen)} of {lines} lines"

    # what one poll costs, on a job that runs (a second monitor that polls only when told)
    job2 = ws.jobs.submit_command(printer_command(40, 0.05), display_name="printer2")
    quiet = JobMonitor(ws, job2.id, autostart=False)
    costs = []
    while not quiet.done:
        t = time.perf_counter()
        quiet.poll()
        costs.append(time.perf_counter() - t)
        time.sleep(0.02)
    return list(seen.values()), list(seen_stream.values()), costs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=20)
    ap.add_argument("--poll", type=float, default=0.5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MLWS_ENVS_DIR", str(Path(tmp) / "envs"))
        ws = Workspace.init(Path(tmp) / "ws")
        try:
            monitor, stream, costs = run(ws, args.lines, args.poll)
        finally:
            ws.close()
    m50, m95 = percentiles(monitor)
    s50, s95 = percentiles(stream)
    c50, c95 = percentiles(costs)
    print(f"{args.lines} log lines, JobMonitor poll_s={args.poll}; baseline ws.jobs.stream "
          f"poll_s=0.2; {len(costs)} timed polls")
    print_table([
        ("line -> monitor tail, p50", ms(m50), ms(s50), "< 1 s", "yes" if m50 < 1 else "NO"),
        ("line -> monitor tail, p95", ms(m95), ms(s95), "< 1 s", "yes" if m95 < 1 else "NO"),
        ("line -> monitor tail, max", ms(max(monitor)), ms(max(stream)), "", ""),
        ("one monitor poll, p50", ms(c50), "", "", ""),
        ("one monitor poll, p95", ms(c95), "", "", ""),
    ])


if __name__ == "__main__":
    main()
