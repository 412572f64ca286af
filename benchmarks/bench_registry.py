"""Registry figures: 10,000 model registrations, list/get at 10,000 versions, hashing.

Run: python benchmarks/bench_registry.py [--versions N]

Baselines, measured in the same run: copying + hashing the file and one raw sqlite3 INSERT
(registration); one raw sqlite3 SELECT by index (get/list); json+sha256 of the same packages
without normalization (hashing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ms, percentiles, print_table, timed  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402
from jupyter_mlws.assets.environment import EnvironmentSpec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=10_000)
    args = ap.parse_args()
    n = args.versions
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.init(root / "p")
        src = root / "files"
        src.mkdir()
        files = []
        for i in range(n):
            f = src / f"m{i}.bin"
            f.write_bytes(f"model weights {i}".encode() * 8)
            files.append(f)

        # -- registration ------------------------------------------------------------------
        per = []
        t0 = time.perf_counter()
        for f in files:
            t = time.perf_counter()
            ws.models.create("bench", f)
            per.append(time.perf_counter() - t)
        total = time.perf_counter() - t0
        p50, p95 = percentiles(per)

        base_db = sqlite3.connect(root / "baseline.db", isolation_level=None)
        base_db.execute("PRAGMA journal_mode=WAL")
        base_db.execute("create table t (id integer primary key, name text, version int, "
                        "sha text, spec text)")
        base_db.execute("create index ix on t(name, version)")
        copy_dir = root / "copies"
        copy_dir.mkdir()
        base = []
        for i, f in enumerate(files[:2000]):
            t = time.perf_counter()
            data = f.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            shutil.copyfile(f, copy_dir / sha)
            base_db.execute("insert into t (name, version, sha, spec) values (?,?,?,?)",
                            ("bench", i, sha, json.dumps({"sha": sha})))
            base.append(time.perf_counter() - t)
        b50, b95 = percentiles(base)
        rows.append((f"register {n} versions: total", f"{total:.1f} s",
                     f"{sum(base) / len(base) * n:.1f} s (est.)", "", ""))
        rows.append(("register: p50 / p95", f"{ms(p50)} / {ms(p95)}",
                     f"{ms(b50)} / {ms(b95)}", "", ""))

        # -- reads at n versions ------------------------------------------------------------
        latest = timed(lambda: ws.models.get("bench", label="latest"), 300)
        by_version = timed(lambda: ws.models.get("bench", str(n // 2)), 300)
        page = timed(lambda: ws.models.list("bench", limit=50), 200)
        names = timed(lambda: ws.models.list(), 200)
        for i in range(1, 200):
            base_db.execute("insert into t (name, version, sha, spec) values (?,?,?,?)",
                            (f"other{i}", 1, "x", "{}"))
        raw_get = timed(lambda: base_db.execute(
            "select * from t where name='bench' order by version desc limit 1").fetchone(), 300)
        raw_page = timed(lambda: base_db.execute(
            "select * from t where name='bench' order by version desc limit 50").fetchall(), 200)
        for label, samples, baseline in (
            ("get(label=latest)", latest, raw_get),
            ("get(version)", by_version, raw_get),
            ("list(name) first page of 50", page, raw_page),
            ("list() latest of each name", names, raw_page),
        ):
            s50, s95 = percentiles(samples)
            r50, r95 = percentiles(baseline)
            rows.append((f"{label}: p50 / p95 @ {n}", f"{ms(s50)} / {ms(s95)}",
                         f"{ms(r50)} / {ms(r95)}", "p95 < 20 ms", "yes" if s95 < 0.020 else "NO"))
        full = timed(lambda: ws.models.list("bench"), 5)
        f50, f95 = percentiles(full)
        rows.append((f"list(name) all {n} versions: p50", ms(f50), "", "(not a target)", ""))

        # -- hashing ----------------------------------------------------------------------
        spec = EnvironmentSpec(
            name="big", image="mlws/base-python:3.11-bookworm",
            conda_file={"channels": ["conda-forge"], "dependencies": [
                "python=3.11", "pip", {"pip": [f"package-{i}=={i}.0.1" for i in range(100)]}]},
            pip_requirements=[f"Other_Package{i} >= {i}.2" for i in range(100)],
        )
        hashes = timed(spec.env_hash, 2000)
        raw = [f"package-{i}=={i}.0.1" for i in range(200)]
        raw_hash = timed(lambda: hashlib.sha256(json.dumps(raw).encode()).hexdigest(), 2000)
        h50, h95 = percentiles(hashes)
        r50, _ = percentiles(raw_hash)
        rows.append(("hash 200-package env: p50 / p95", f"{ms(h50)} / {ms(h95)}", ms(r50),
                     "< 1 ms", "yes" if h95 < 0.001 else "NO"))
        ws.close()
    print_table(rows)


if __name__ == "__main__":
    main()
