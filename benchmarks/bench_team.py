"""Team workspace figures (PostgreSQL + S3 via SeaweedFS) beside the local default (SQLite +
folder), in one run.

Run: python benchmarks/bench_team.py [--versions N] [--big-mb 100] [--small N]

Starts both servers with scripts/team-servers.sh (stopped at the end). Measures: register p50/p95
of small and big models; `get`/`list` p95 with N versions of one model in the store (the
versions are added through the store's own create_version, not by uploading N files); download
of the big model cold (empty local cache) and cached; log-follow delay: a job on machine A
prints time-stamped lines at random intervals while `ws.jobs.stream` follows it on A (its local
files, the baseline) and on B (the parts A publishes to S3), both with the default poll; the
delay is from the print to the line reaching each follower (one clock: one machine).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ms, percentiles, print_table, team_servers, timed  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402
from jupyter_mlws.store.base import NewVersion  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]



def _register(ws: Workspace, root: Path, name: str, n: int, size: int) -> list[float]:
    samples = []
    for i in range(n):
        f = root / f"{name}-{i}.bin"
        with open(f, "wb") as out:
            left = size
            while left > 0:
                out.write(os.urandom(min(left, 1 << 20)))
                left -= 1 << 20
        t = time.perf_counter()
        ws.models.create(name, f)
        samples.append(time.perf_counter() - t)
        f.unlink()
    return samples


def _fill(ws: Workspace, name: str, n: int) -> None:
    """n versions of ``name`` through the store (the same row a registration commits)."""
    spec = dict(ws.models.get(name).spec)
    for i in range(n):
        ws.store.create_version(NewVersion(
            kind="model", name=name, version=None, content_hash=f"bench-{i}", spec=spec,
            description=None, tags={}, created_by="bench"))


def _get_list(ws: Workspace, name: str, n: int) -> tuple[float, float]:
    versions = [str(random.randint(1, n)) for _ in range(200)]
    it = iter(versions)
    get = timed(lambda: ws.models.get(name, next(it)), 200)
    lst = timed(lambda: ws.models.list(name, limit=50), 100)
    return percentiles(get)[1], percentiles(lst)[1]


def _download(ws: Workspace, root: Path, name: str, *, cold: bool) -> float:
    if cold and ws.artifacts.remote is not None:
        shutil.rmtree(ws.artifacts.cache.folder, ignore_errors=True)
    dest = root / f"dl-{time.monotonic_ns()}"
    t = time.perf_counter()
    ws.models.download(name, None, dest)
    took = time.perf_counter() - t
    shutil.rmtree(dest)
    return took


LINES_JOB = ("python -c \"import random, time\n"
             "for i in range({n}):\n"
             "    time.sleep(random.uniform(0.2, 0.8)); print(f'stamp {{time.time()!r}}', "
             "flush=True)\"")


def _follow(ws: Workspace, job_id: str, delays: list[float]) -> None:
    for line in ws.jobs.stream(job_id):
        if line.startswith("stamp "):
            delays.append(time.time() - float(line.split()[1]))


def _log_delay(a: Workspace, b: Workspace, n: int) -> tuple[list[float], list[float]]:
    """Delays of ``n`` lines seen on A (local files) and on B (published parts)."""
    job = a.jobs.submit_command(LINES_JOB.format(n=n))
    local: list[float] = []
    remote: list[float] = []
    threads = [threading.Thread(target=_follow, args=(ws, job.id, out))
               for ws, out in ((a, local), (b, remote))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return local, remote


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=5_000)
    ap.add_argument("--big-mb", type=int, default=100)
    ap.add_argument("--small", type=int, default=30)
    ap.add_argument("--log-lines", type=int, default=60)
    args = ap.parse_args()
    servers = Path(tempfile.mkdtemp(prefix="mlws-bench-team-"))
    rows = []
    try:
        store_uri = team_servers(servers)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            team = Workspace.init(root / "A", store_uri=store_uri,
                                  artifact_uri="s3://mlws/bench")
            local = Workspace.init(root / "L")
            small_t = percentiles(_register(team, root, "small", args.small, 4096))
            small_l = percentiles(_register(local, root, "small", args.small, 4096))
            rows.append(("register 4 KB p50/p95", f"{ms(small_t[0])} / {ms(small_t[1])}",
                         f"{ms(small_l[0])} / {ms(small_l[1])} local", "-", "-"))
            big = args.big_mb << 20
            big_t = percentiles(_register(team, root, "big", 3, big))
            big_l = percentiles(_register(local, root, "big", 3, big))
            rows.append((f"register {args.big_mb} MB p50/p95",
                         f"{ms(big_t[0])} / {ms(big_t[1])}",
                         f"{ms(big_l[0])} / {ms(big_l[1])} local", "-", "-"))
            for ws in (team, local):
                _fill(ws, "small", args.versions)
            g_t, l_t = _get_list(team, "small", args.versions)
            g_l, l_l = _get_list(local, "small", args.versions)
            rows.append((f"get p95 @ {args.versions} versions", ms(g_t), f"{ms(g_l)} sqlite",
                         "< 20 ms", "yes" if g_t < 0.02 else "NO"))
            rows.append((f"list(limit 50) p95 @ {args.versions}", ms(l_t), f"{ms(l_l)} sqlite",
                         "< 20 ms", "yes" if l_t < 0.02 else "NO"))
            b = Workspace.init(root / "B", store_uri=store_uri, join=True)
            cold = _download(b, root, "big", cold=True)
            warm = _download(b, root, "big", cold=False)
            base = _download(local, root, "big", cold=False)
            rows.append((f"download {args.big_mb} MB cold / cached", f"{ms(cold)} / {ms(warm)}",
                         f"{ms(base)} local", "cached < cold",
                         "yes" if warm < cold else "NO"))
            on_a, on_b = _log_delay(team, b, args.log_lines)
            (la50, la95), (lb50, lb95) = percentiles(on_a), percentiles(on_b)
            rows.append((f"log follow A->B p50/p95 ({len(on_b)} lines)",
                         f"{ms(lb50)} / {ms(lb95)}", f"{ms(la50)} / {ms(la95)} on A",
                         "< 2 s", "yes" if lb95 < 2 else "NO"))
            for ws in (team, local, b):
                ws.close()
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "team-servers.sh"), "down", str(servers)],
                       capture_output=True, timeout=120)
        shutil.rmtree(servers, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    main()
