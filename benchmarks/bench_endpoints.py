"""Online endpoint figures, side by side with `mlflow models serve` and the bare run() call.

A temporary workspace gets one endpoint with four deployments (one replica each, replicas as
processes of this Python, which has scikit-learn and mlflow):

    score-identity   an Azure-style score.py whose run() echoes the JSON body
    score-sklearn    an Azure-style score.py: joblib-loaded LinearRegression, run() predicts
    nocode-identity  the identity model saved as an MLflow pyfunc model, no scoring script
    nocode-sklearn   the same LinearRegression saved by mlflow.sklearn, no scoring script

Then, in one run, a keep-alive HTTP client measures requests/s and p50/p99 latency at
concurrency 1 and 10, for each model (identity, sklearn), of:

    floor        run() of the score.py called in-process (threads), no HTTP at all
    replica      POST to the score.py replica's own port (no router)
    endpoint     POST to the endpoint with its key and the deployment header (score.py)
    endpoint-nc  POST to the endpoint, no-code deployment of the MLflow model
    mlflow       `mlflow models serve -m MODEL --env-manager local` on the same MLflow model
    azureml      Azure's server (azureml-inference-server-http), same score.py, when
                 --azureml-server names its `azmlinfsrv`

Also printed: how long a deployment of an already built environment takes to be Succeeded
(a venv; and a Docker image when an engine is reachable). Everything is stopped at the end.

Run: python benchmarks/bench_endpoints.py [--requests N] [--keep DIR] [--azureml-server PATH]
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ms  # noqa: E402

IDENTITY_SCORE = """\
import json
def init():
    pass
def run(raw_data):
    return json.loads(raw_data)
"""
SKLEARN_SCORE = """\
import json, os
import joblib
import numpy as np
def init():
    global model
    model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.pkl"))
def run(raw_data):
    return model.predict(np.array(json.loads(raw_data)["data"])).tolist()
"""
ROW = [1.0, 2.0, 3.0, 4.0]
#: body per (model, server kind): score.py reads "data"; MLflow servers read "inputs"
BODIES = {"score": json.dumps({"data": [ROW]}).encode(),
          "mlflow": json.dumps({"inputs": [ROW]}).encode()}


def _http_call(port: int, path: str, headers: dict[str, str], body: bytes) -> Any:
    def call(n: int, out: list[float]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(n):
            t = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            out.append(time.perf_counter() - t)
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status} from port {port}")
        conn.close()
    return call


def _inproc_call(run: Any, body: bytes) -> Any:
    text = body.decode()

    def call(n: int, out: list[float]) -> None:
        for _ in range(n):
            t = time.perf_counter()
            run(text)
            out.append(time.perf_counter() - t)
    return call


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(call: Any, total: int, concurrency: int) -> tuple[float, float, float]:
    """requests/s, p50, p99 of ``total`` calls spread over ``concurrency`` threads."""
    call(20, [])  # warm up
    samples: list[list[float]] = [[] for _ in range(concurrency)]
    threads = [threading.Thread(target=call, args=(total // concurrency, samples[i]))
               for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = [s for part in samples for s in part]
    return len(flat) / elapsed, _p(flat, 0.5), _p(flat, 0.99)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(port: int, path: str, body: bytes, proc: subprocess.Popen[bytes],
               what: str) -> None:
    deadline = time.monotonic() + 120
    call = _http_call(port, path, {"Content-Type": "application/json"}, body)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            call(1, [])
            return
        except (OSError, RuntimeError, http.client.HTTPException):
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not start")


def _serve_mlflow(model: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`mlflow models serve` on ``model`` with this Python's packages (offline)."""
    port = _free_port()
    exe = shutil.which("mlflow") or "mlflow"
    proc = subprocess.Popen([exe, "models", "serve", "-m", str(model), "--env-manager",
                             "local", "-h", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    _wait_http(port, "/invocations", BODIES["mlflow"], proc, "mlflow models serve")
    return proc, port


def _serve_azureml(exe: str, code: Path, model_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen([exe, "--entry_script", "score.py", "--port", str(port)], cwd=code,
                            env={**os.environ, "AZUREML_MODEL_DIR": str(model_dir.parent)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    _wait_http(port, "/score", BODIES["score"], proc, "azmlinfsrv")
    return proc, port


def _models(root: Path) -> dict[str, dict[str, Path]]:
    """Per model: the score.py code folder, its model folder, and the MLflow model."""
    import joblib
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    class Identity(mlflow.pyfunc.PythonModel):  # type: ignore[misc, name-defined]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    x = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 0.0, 1.0], [0.5, 0.5, 2.0, 3.0]])
    sk = LinearRegression().fit(x, x @ np.array([1.0, 2.0, 0.5, -1.0]))
    out: dict[str, dict[str, Path]] = {}
    for name, script in (("identity", IDENTITY_SCORE), ("sklearn", SKLEARN_SCORE)):
        base = root / name
        (base / "code").mkdir(parents=True)
        (base / "code" / "score.py").write_text(script)
        (base / "model").mkdir()
        out[name] = {"code": base / "code", "model": base / "model", "mlflow": base / "mlflow"}
    joblib.dump(sk, root / "sklearn" / "model" / "model.pkl")
    (root / "identity" / "model" / "empty.txt").write_text("")
    mlflow.sklearn.save_model(sk, str(root / "sklearn" / "mlflow"),
                              signature=infer_signature(x, sk.predict(x)))
    mlflow.pyfunc.save_model(str(root / "identity" / "mlflow"), python_model=Identity())
    return out


def _deploy_all(ws: Any, models: dict[str, dict[str, Path]]) -> float:
    """The four deployments; returns how long a cached-venv deployment took to Succeeded."""
    ws.endpoints.create({"name": "bench-ep"})
    for name, m in models.items():
        ws.endpoints.create_deployment({
            "name": f"score-{name}", "endpoint_name": "bench-ep", "instance_count": 1,
            "model": {"path": str(m["model"]), "name": f"{name}-files"},
            "code_configuration": {"code": str(m["code"]), "scoring_script": "score.py"}})
        ws.models.create(f"{name}-mlflow", m["mlflow"], type="mlflow_model")
        ws.endpoints.create_deployment({
            "name": f"nocode-{name}", "endpoint_name": "bench-ep", "instance_count": 1,
            "model": f"azureml:{name}-mlflow:1"})
    ws.endpoints.update_traffic("bench-ep", {"score-identity": 100})
    env = ws.environments.create("bench-env", pip_requirements=["six==1.16.0"])
    ws.environments.build(env, builder="venv")  # the deployment below finds it cached
    t = time.perf_counter()
    ws.endpoints.create_deployment({
        "name": "cached-venv", "endpoint_name": "bench-ep", "environment": "bench-env:1",
        "code_configuration": {"code": str(models["identity"]["code"]),
                               "scoring_script": "score.py"}})
    return time.perf_counter() - t


def _docker_deploy_s(ws: Any, code: Path) -> str:
    """Deployment of a cached image to Succeeded, on an endpoint on Docker (or why not)."""
    try:
        from jupyter_mlws.docker_engine import docker_client

        docker_client()
    except Exception as exc:
        return f"not measured ({type(exc).__name__}: no Docker engine)"
    ws.endpoints.create({"name": "bench-docker", "compute": "docker"})
    spec = {"name": "blue", "endpoint_name": "bench-docker",
            "environment": "azureml:MLWS-python-3.11-minimal@latest",
            "code_configuration": {"code": str(code), "scoring_script": "score.py"}}
    try:
        ws.endpoints.create_deployment(spec)  # builds the image when it is not cached
        t = time.perf_counter()
        ws.endpoints.create_deployment({**spec, "name": "green"})
        return f"{time.perf_counter() - t:.2f} s"
    finally:
        ws.endpoints.delete("bench-docker")


def _load_run(code: Path, model_dir: Path) -> Any:
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir.parent)  # Azure: <dir>/<folder name>/
    spec = importlib.util.spec_from_file_location(f"bench_{code.parent.name}", code / "score.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    return module.run


def _targets(ws: Any, models: dict[str, dict[str, Path]], servers: dict[str, Any],
             name: str) -> list[tuple[str, Any]]:
    port = ws.endpoints.show("bench-ep")["port"]
    key = ws.endpoints.credentials("bench-ep")["primaryKey"]
    replica = ws.endpoints.show_deployment("bench-ep", f"score-{name}")["replicas"][0]["port"]
    json_ct = {"Content-Type": "application/json"}

    def routed(dep: str) -> dict[str, str]:
        return {**json_ct, "Authorization": f"Bearer {key}", "azureml-model-deployment": dep}

    m = models[name]
    out = [("floor", _inproc_call(_load_run(m["code"], m["model"]), BODIES["score"])),
           ("replica", _http_call(replica, "/score", json_ct, BODIES["score"])),
           ("endpoint", _http_call(port, "/score", routed(f"score-{name}"), BODIES["score"])),
           ("endpoint-nc", _http_call(port, "/score", routed(f"nocode-{name}"),
                                      BODIES["mlflow"])),
           ("mlflow", _http_call(servers[f"mlflow-{name}"][1], "/invocations", json_ct,
                                 BODIES["mlflow"]))]
    if f"azureml-{name}" in servers:
        out.append(("azureml", _http_call(servers[f"azureml-{name}"][1], "/score", json_ct,
                                          BODIES["score"])))
    return out


def _report(ws: Any, models: dict[str, dict[str, Path]], servers: dict[str, Any],
            total: int) -> None:
    print(f"{total} requests per row, keep-alive, {os.cpu_count()} cores\n")
    print(f"{'model':<9} {'path':<12} {'conc':>4} {'req/s':>8} {'p50':>10} {'p99':>10}")
    for name in models:
        targets = _targets(ws, models, servers, name)
        for concurrency in (1, 10):
            rows = {}
            for label, call in targets:
                rows[label] = measure(call, total, concurrency)
                rps, p50, p99 = rows[label]
                print(f"{name:<9} {label:<12} {concurrency:>4} {rps:>8.0f} {ms(p50):>10} "
                      f"{ms(p99):>10}")
            print(f"{name:<9} router overhead at concurrency {concurrency}: p50 "
                  f"{ms(rows['endpoint'][1] - rows['replica'][1])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--keep", help="Use this folder and keep it.")
    parser.add_argument("--azureml-server", help="Path of azmlinfsrv, to measure it too.")
    parser.add_argument("--no-docker", action="store_true", help="Skip the Docker deployment.")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="mlws-bench-ep-"))
    os.environ.setdefault("MLWS_ENVS_DIR", str(root / "envs"))
    from jupyter_mlws import Workspace

    models = _models(root / "models")
    ws = Workspace.init(root / "project")
    servers: dict[str, Any] = {}
    try:
        deploy_s = _deploy_all(ws, models)
        docker_s = ("skipped" if args.no_docker else
                    _docker_deploy_s(ws, models["identity"]["code"]))
        for name, m in models.items():
            servers[f"mlflow-{name}"] = _serve_mlflow(m["mlflow"])
            if args.azureml_server:
                servers[f"azureml-{name}"] = _serve_azureml(args.azureml_server, m["code"],
                                                            m["model"])
        print(f"deployment of a cached venv environment to Succeeded: {deploy_s:.2f} s")
        print(f"deployment of a cached Docker image to Succeeded: {docker_s}")
        _report(ws, models, servers, args.requests)
    finally:
        for proc, _port in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        for ep in ws.endpoints.list():
            ws.endpoints.delete(ep["name"])
        ws.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
