"""REST figures: list pages at 10,000 model versions through a real Jupyter server.

A `jupyter server` process (with the jupyter_mlws extension) serves a temporary workspace that
holds 10,000 model versions (9,000 of one name, one version each of 1,000 other names) and 1,000
finished jobs. From this process, a keep-alive HTTP client measures each page:

    GET /mlws/api/assets/models                              first page of 50 names (+ total)
    GET /mlws/api/assets/models?q=99                         a name filter
    GET /mlws/api/assets/models/bench/versions?limit=50      newest 50 versions of one name
    GET /mlws/api/assets/models/bench/versions?limit=50&offset=5000
    GET /mlws/api/jobs?limit=50

Baseline, same server, same client, measured in between: GET /api/status (Jupyter's own
cheapest authenticated route). Target: p95 < 50 ms per page.

Run: python benchmarks/bench_rest.py [--versions N] [--jobs N] [--samples N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import requests  # noqa: E402
from _util import ms, percentiles, print_table  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402

TARGET_S = 0.050


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(ws: Workspace, root: Path, versions: int, jobs: int) -> tuple[float, float]:
    """Register the model versions through the facade and record finished jobs in the store."""
    weights = root / "weights.bin"
    weights.write_bytes(b"weights" * 64)
    others = min(1000, versions // 10)
    t = time.perf_counter()
    for i in range(versions - others):
        ws.models.create("bench", weights, tags={"i": str(i)})
    for i in range(others):
        ws.models.create(f"model-{i:04d}", weights, tags={"team": "a" if i % 2 else "b"})
    t_models = time.perf_counter() - t
    # finished jobs, written as the runner leaves them (running 1,000 real jobs measures
    # papermill, not the API)
    t = time.perf_counter()
    for i in range(jobs):
        ws.store.create_job({"id": f"bench_job_{i:05d}", "type": "command",
                             "display_name": f"job {i}", "experiment": "bench",
                             "status": "Completed", "compute": "local",
                             "spec": {"command": "true"}})
    return t_models, time.perf_counter() - t


def start_server(root: Path, ws_path: Path, port: int, token: str) -> subprocess.Popen[bytes]:
    config = root / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"jupyter_mlws": True}, "port": port,
                      "ip": "127.0.0.1", "open_browser": False, "root_dir": str(root),
                      "port_retries": 0, "allow_root": True},
        "IdentityProvider": {"token": token},
        "MlwsServerConfig": {"workspace_path": str(ws_path)},
    }))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "MLWS_ENVS_DIR": str(root / "envs")}
    log = open(root / "server.log", "wb")  # noqa: SIM115 - the server writes it until the end
    return subprocess.Popen([sys.executable, "-m", "jupyter_server"], cwd=root, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def wait_ready(session: requests.Session, url: str, proc: subprocess.Popen[bytes],
               log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if session.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not start in 60 s:\n{log.read_text()[-3000:]}")


def measure(session: requests.Session, url: str, n: int, check: str | None = None
            ) -> list[float]:
    for _ in range(5):  # warm up: connection, workspace opening, SQLite page cache
        r = session.get(url, timeout=30)
        r.raise_for_status()
    if check is not None:
        page = r.json()
        assert page["items"] and page["total"], (url, str(page)[:200])
        assert check in json.dumps(page["items"][0]), (url, check)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = session.get(url, timeout=30)
        r.content  # noqa: B018 - read the whole body
        out.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise SystemExit(f"{url} -> {r.status_code}: {r.text[:300]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=1_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--keep", type=Path, default=None,
                    help="Keep the populated workspace in this folder and reuse it next time.")
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kept = args.keep.resolve() if args.keep else None
        marker = f"{args.versions} versions, {args.jobs} jobs"
        if kept is not None and (kept / "populated").is_file() \
                and (kept / "populated").read_text() == marker:
            ws_path = kept / ".mlws"
            print(f"setup: reusing {ws_path} ({marker})", flush=True)
        else:
            if kept is not None:
                shutil.rmtree(kept, ignore_errors=True)
            ws = Workspace.init(kept or root / "project")
            t_models, t_jobs = populate(ws, root, args.versions, args.jobs)
            ws_path = ws.path
            ws.close()
            if kept is not None:
                (kept / "populated").write_text(marker)
            print(f"setup: {args.versions} model versions in {t_models:.1f} s, "
                  f"{args.jobs} job records in {t_jobs:.1f} s", flush=True)

        port, token = free_port(), secrets.token_hex(16)
        proc = start_server(root, ws_path, port, token)
        try:
            session = requests.Session()
            session.headers["Authorization"] = f"token {token}"
            base = f"http://127.0.0.1:{port}"
            wait_ready(session, f"{base}/api/status", proc, root / "server.log")
            api = f"{base}/mlws/api"
            mid = max(0, min(5000, args.versions - min(1000, args.versions // 10) - 50))
            pages = [
                ("assets/models (first page of 50 names)", f"{api}/assets/models",
                 '"bench"'),
                ("assets/models?q=99 (names containing it)", f"{api}/assets/models?q=99",
                 "99"),
                ("versions?limit=50", f"{api}/assets/models/bench/versions?limit=50",
                 '"version"'),
                (f"versions?limit=50&offset={mid}",
                 f"{api}/assets/models/bench/versions?limit=50&offset={mid}", '"version"'),
                ("jobs?limit=50", f"{api}/jobs?limit=50", "bench_job_"),
            ]
            baseline: list[float] = []
            for label, url, check in pages:
                baseline += measure(session, f"{base}/api/status", args.samples // 2)
                samples = measure(session, url, args.samples, check)
                p50, p95 = percentiles(samples)
                rows.append((f"GET {label}: p50 / p95", f"{ms(p50)} / {ms(p95)}", "",
                             "p95 < 50 ms", "yes" if p95 < TARGET_S else "NO"))
            b50, b95 = percentiles(baseline)
            rows = [(m, ours, f"{ms(b50)} / {ms(b95)}", target, ok)
                    for m, ours, _, target, ok in rows]
            rows.insert(0, ("GET /api/status (Jupyter): p50 / p95", f"{ms(b50)} / {ms(b95)}",
                            "(the baseline)", "", ""))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"{args.versions} model versions, {args.jobs} jobs; {args.samples} requests per page; "
          "baseline: GET /api/status on the same server")
    print_table(rows)


if __name__ == "__main__":
    main()
