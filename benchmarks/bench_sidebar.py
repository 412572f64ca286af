"""Sidebar figures in a real browser: the ML Workspace panel with 10,000 model versions.

Run: python benchmarks/bench_sidebar.py [--versions N] [--names N] [--runs N]

Seeds a workspace with N versions of one model ("bench-model") and a few hundred other model
names (registered through the Python facade), and a server root folder with as many files, then
runs the galata spec labextension/ui-tests/tests/perf.spec.ts (Playwright project `perf`) against
`jupyter lab` with Debian's Chromium. Every figure is measured in the page (performance.now())
from the action to the frame in which the awaited rows are visible.

Baseline, measured in the same page: opening JupyterLab's file browser panel on a folder with the
same number of entries as there are model names.

Needs: `jlpm` (from jupyterlab), Chromium at /usr/bin/chromium (scripts/browser-tests.sh installs
it and the ui-tests dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
UI_TESTS = ROOT / "labextension" / "ui-tests"
TARGET_S = 1.0


def seed(ws_dir: Path, root_dir: Path, versions: int, names: int) -> float:
    from jupyter_mlws import Workspace

    t0 = time.perf_counter()
    ws = Workspace.init(ws_dir)
    files = ws_dir.parent / "files"
    files.mkdir(parents=True, exist_ok=True)
    try:
        for i in range(versions):
            f = files / "weights.bin"
            f.write_bytes(f"bench weights {i}\n".encode() * 8)
            ws.models.create("bench-model", f, tags={"i": str(i), "stage": "bench"})
        for i in range(names):
            f = files / "other.bin"
            f.write_bytes(f"other model {i}\n".encode() * 4)
            ws.models.create(f"model-name-{i:04d}", f, tags={"team": f"t{i % 7}"})
        path = ws.path
    finally:
        ws.close()
    for i in range(names + 1):
        (root_dir / f"file-{i:04d}.txt").write_text(f"file {i}\n")
    print(f"seeded {versions} versions of bench-model and {names} other names in "
          f"{time.perf_counter() - t0:.1f} s ({path})", flush=True)
    return time.perf_counter() - t0


def ensure_ui_deps() -> None:
    chromium = os.environ.get("MLWS_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        sys.exit(f"Chromium is not at {chromium}: run scripts/browser-tests.sh once (it installs "
                 "it), or `apt-get install -y chromium`.")
    if not (UI_TESTS / "node_modules" / "@jupyterlab" / "galata").is_dir():
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
        subprocess.run(["jlpm", "install"], cwd=UI_TESTS, env=env, check=True)
    if not shutil.which("jupyter"):
        sys.exit("`jupyter` is not on PATH: pip install -e . first.")


def ms(value: float) -> str:
    return f"{value:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=10_000)
    ap.add_argument("--names", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    ensure_ui_deps()

    with tempfile.TemporaryDirectory(prefix="mlws-bench-sidebar-") as tmp:
        base = Path(tmp)
        ws_dir = base / "ws" / ".mlws"
        root_dir = base / "root"
        root_dir.mkdir()
        seed(ws_dir, root_dir, args.versions, args.names)
        out = base / "perf.json"
        env = {
            **os.environ,
            "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
            "MLWS_WORKSPACE": str(ws_dir),
            "MLWS_SEED": "0",
            "JUPYTERLAB_GALATA_ROOT_DIR": str(root_dir),
            "MLWS_PERF_OUT": str(out),
            "MLWS_PERF_RUNS": str(args.runs),
            "MLWS_PERF_MODEL": "bench-model",
            "MLWS_SERVER_LOG": str(base / "jupyter-server.log"),
        }
        proc = subprocess.run(
            ["jlpm", "playwright", "test", "--project", "perf", "--reporter", "list"],
            cwd=UI_TESTS, env=env,
        )
        if proc.returncode != 0 or not out.exists():
            log = Path(env["MLWS_SERVER_LOG"])
            tail = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else []
            print("\n".join(["--- server log (last lines) ---", *tail]), file=sys.stderr)
            sys.exit(f"the browser benchmark failed (exit {proc.returncode})")
        data = json.loads(out.read_text())

    med = data["median_ms"]
    n_versions, n_names = data["versions"], data["names"]
    target = f"< {TARGET_S * 1000:.0f} ms"

    def ok(v: float) -> str:
        return "yes" if v < TARGET_S * 1000 else "NO"

    fb = ms(med["filebrowser"])
    rows = [
        (f"open panel, first rows ({n_versions} versions, {n_names} names), cold",
         ms(med["panel_cold"]), f"{fb} (file browser, {n_names} files)", target,
         ok(med["panel_cold"])),
        ("open panel again (rendered)", ms(med["panel_warm"]), fb, target,
         ok(med["panel_warm"])),
        (f"expand a model with {n_versions} versions: first page", ms(med["expand_versions"]),
         "", target, ok(med["expand_versions"])),
        ("versions: load more (next page)", ms(med["load_more_versions"]), "", target,
         ok(med["load_more_versions"])),
        ("names: load more (next 50)", ms(med["load_more_names"]), "", target,
         ok(med["load_more_names"])),
        ("filter names (q, incl. 250 ms debounce)", ms(med["filter"]), "", target,
         ok(med["filter"])),
    ]
    print(f"\nmedians of {data['runs']} runs, measured in Chromium (performance.now())\n")
    print_table(rows)
    if any(r[4] == "NO" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
