"""Azure hello-world figure: `mlws job create -f hello.yml --wait` to Completed on local compute,
with the environment named as Azure's examples name it
(`azureml://registries/azureml/environments/sklearn-1.5/labels/latest`), already built.

Baselines, measured in the same run (p50 of N each, after one warm-up that builds the venv):
  - the same command job naming an already-registered workspace environment of the same
    definition (`azureml:bench-sklearn@latest`): what resolving from the registry adds;
  - the same command job with no environment (the current interpreter);
  - a bare `python -c pass` (the floor of starting the CLI's interpreter).

Run: python benchmarks/bench_azure.py [--repeat 5]
(venvs are kept in ~/.mlws/envs, or $MLWS_ENVS_DIR, so a second run skips the build.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import percentiles, print_table  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402

REGISTRY_ENV = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
HELLO = """$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "hello world"
{environment}compute: azureml:local
display_name: hello-world-example
experiment_name: hello-world-example
"""


def write_spec(folder: Path, name: str, environment: str | None) -> Path:
    line = f"environment: {environment}\n" if environment else ""
    path = folder / name
    path.write_text(HELLO.format(environment=line))
    return path


def run_cli(spec: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jupyter_mlws.cli", "job", "create", "-f",
                           str(spec), "--wait"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{spec.name} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def bare_python(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.init(root / "project")
        curated = ws.environments.get(REGISTRY_ENV)
        ws.environments.create("bench-sklearn", spec=curated.definition().model_copy(
            update={"name": "bench-sklearn"}))
        ws.close()
        env = {**os.environ, "MLWS_WORKSPACE": str(root / "project" / ".mlws"),
               "PYTHONPATH": os.pathsep.join(p for p in (
                   str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH"))
                   if p)}
        specs = {
            "registry env (azureml://registries/...)": write_spec(root, "hello.yml",
                                                                  REGISTRY_ENV),
            "workspace env (azureml:bench-sklearn)": write_spec(
                root, "hello-ws.yml", "azureml:bench-sklearn@latest"),
            "no environment": write_spec(root, "hello-bare.yml", None),
        }
        t0 = time.perf_counter()
        run_cli(specs["registry env (azureml://registries/...)"], env)  # warm-up: builds
        print(f"warm-up (builds the sklearn-1.5 venv when missing): "
              f"{time.perf_counter() - t0:.1f} s")
        for spec in specs.values():
            run_cli(spec, env)
        samples: dict[str, list[float]] = {k: [] for k in specs}
        samples["bare `python -c pass`"] = []
        for _ in range(args.repeat):  # interleaved, so machine load hits every row alike
            for label, spec in specs.items():
                samples[label].append(run_cli(spec, env))
            samples["bare `python -c pass`"].append(bare_python(env))
    rows = []
    base = percentiles(samples["workspace env (azureml:bench-sklearn)"])[0]
    for label, values in samples.items():
        p50, _p95 = percentiles(values)
        rows.append((f"hello-world to Completed, {label}", f"{p50:.2f} s",
                     f"{base:.2f} s", "-", "-"))
    print(f"p50 of {args.repeat} runs each (baseline column: the workspace env)")
    print_table(rows)


if __name__ == "__main__":
    main()
