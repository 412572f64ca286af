"""Online endpoint figures: invoke through the router vs calling a replica directly.

A temporary workspace gets an endpoint with one deployment (one replica, an Azure-style
``score.py`` whose ``run()`` echoes a small JSON body) in an environment built as a venv. Then,
in one run, a keep-alive HTTP client measures requests/s and p50/p95 latency at concurrency 1
and 10 for:

    router   POST http://127.0.0.1:<endpoint port>/score   (key check, traffic pick, forward)
    replica  POST http://127.0.0.1:<replica port>/score    (the same replica, no router: the floor)

    azureml  Azure's own scoring server (azureml-inference-server-http), same score.py, when
             --azureml-server names its ``azmlinfsrv`` (installed in a venv of its own)

Also printed: how long a deployment of an already built environment takes to be Succeeded.
Everything is stopped and deleted at the end.

Run: python benchmarks/bench_endpoints.py [--requests N] [--keep DIR] [--azureml-server PATH]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ms, percentiles  # noqa: E402

SCORE = """\
import json
def init():
    pass
def run(raw_data):
    return json.loads(raw_data)
"""
BODY = b'{"data": [[1.0, 2.0, 3.0, 4.0]]}'


def _worker(port: int, headers: dict[str, str], n: int, out: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/score", body=BODY, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append(time.perf_counter() - t)
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
    conn.close()


def measure(port: int, headers: dict[str, str], total: int, concurrency: int
            ) -> tuple[float, float, float]:
    """requests/s, p50, p95 of ``total`` requests spread over ``concurrency`` connections."""
    _worker(port, headers, 20, [])  # warm up
    samples: list[list[float]] = [[] for _ in range(concurrency)]
    threads = [threading.Thread(target=_worker,
                                args=(port, headers, total // concurrency, samples[i]))
               for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = [s for part in samples for s in part]
    p50, p95 = percentiles(flat)
    return len(flat) / elapsed, p50, p95


def _start_azureml(exe: str, code: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Azure's scoring server on a free port, serving ``code/score.py``; waits until ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([exe, "--entry_script", "score.py", "--port", str(port)], cwd=code,
                            env={**os.environ, "AZUREML_MODEL_DIR": str(code)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _worker(port, {"Content-Type": "application/json"}, 1, [])
            return proc, port
        except (OSError, RuntimeError, http.client.HTTPException):
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("azmlinfsrv did not start")


def _setup(root: Path) -> tuple[object, float]:
    from jupyter_mlws import Workspace

    (root / "code").mkdir(parents=True)
    (root / "code" / "score.py").write_text(SCORE)
    ws = Workspace.init(root / "project")
    ws.endpoints.create({"name": "bench-ep"})
    env = ws.environments.create("bench-env", pip_requirements=["six==1.16.0"])
    ws.environments.build(env, builder="venv")  # the deployment below finds it cached
    spec = {"name": "blue", "endpoint_name": "bench-ep", "environment": "bench-env:1",
            "code_configuration": {"code": str(root / "code"), "scoring_script": "score.py"},
            "instance_count": 1}
    t = time.perf_counter()
    ws.endpoints.create_deployment(spec, all_traffic=True)
    return ws, time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--keep", help="Use this folder and keep it.")
    parser.add_argument("--azureml-server", help="Path of azmlinfsrv, to measure it too.")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="mlws-bench-ep-"))
    os.environ.setdefault("MLWS_ENVS_DIR", str(root / "envs"))
    ws, deploy_s = _setup(root)
    azureml = _start_azureml(args.azureml_server, root / "code") if args.azureml_server else None
    try:
        ep = ws.endpoints.show("bench-ep")  # type: ignore[attr-defined]
        dep = ws.endpoints.show_deployment("bench-ep", "blue")  # type: ignore[attr-defined]
        key = ws.endpoints.credentials("bench-ep")["primaryKey"]  # type: ignore[attr-defined]
        routed = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        direct = {"Content-Type": "application/json"}
        print(f"deployment of a cached venv environment to Succeeded: {deploy_s:.2f} s")
        print(f"{args.requests} requests per row, keep-alive, body {len(BODY)} bytes, "
              f"{os.cpu_count()} cores\n")
        print(f"{'path':<8} {'conc':>4} {'req/s':>8} {'p50':>10} {'p95':>10}")
        for concurrency in (1, 10):
            rows = {}
            targets = [("replica", dep["replicas"][0]["port"], direct),
                       ("router", ep["port"], routed)]
            if azureml is not None:
                targets.append(("azureml", azureml[1], direct))
            for label, port, headers in targets:
                rows[label] = measure(port, headers, args.requests, concurrency)
                rps, p50, p95 = rows[label]
                print(f"{label:<8} {concurrency:>4} {rps:>8.0f} {ms(p50):>10} {ms(p95):>10}")
            print(f"router overhead at concurrency {concurrency}: p50 "
                  f"{ms(rows['router'][1] - rows['replica'][1])}")
    finally:
        if azureml is not None:
            os.killpg(azureml[0].pid, signal.SIGTERM)
            azureml[0].wait()
        ws.endpoints.delete("bench-ep")  # type: ignore[attr-defined]
        ws.close()  # type: ignore[attr-defined]
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
