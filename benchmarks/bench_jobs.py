"""Job figures, each beside a baseline measured in the same run, interleaved, with the load.

The notebook is papermill's ``simple_execute.ipynb`` shape: a ``parameters`` cell setting
``msg = None`` and a cell printing it; every job gets ``-p msg hi``.

a. CLI ``mlws job notebook NB -p msg hi --wait`` (submit -> Completed, output stored) against
   the ``papermill`` CLI, cold (no job agent) and warm (a warm kernel waiting).
b. ``%submit NB -p msg hi --wait`` in a live kernel against ``papermill.execute_notebook``
   called in that kernel.
c. CLI submit-only (``mlws job notebook NB -p msg hi``), p50/p95: the fast path (the job agent
   running: the CLI imports the standard library only and hands the submission over) beside
   the normal path (agent off), with ``python -c pass``; then where the fast path's time goes
   (imports, ``-X importtime``'s top imports, the agent's round trip).
d. N jobs at once at concurrency 2 against N/2 x one lone job (warm agent off: the work is the
   same; a lone job is submitted when no runner of a job just ended offers itself, see
   jupyter_mlws/jobs/relay.py; one job right after another is reported too).
e. Cold vs warm through the Python API, with the job's own timestamps (where the time goes);
   the agent's CPU time and the pool's memory.
f. (with Docker) the same job in the same environment (``MLWS-python-3.11-minimal``) on
   ``compute: docker`` (a container started per job: no warm pool) beside local compute (cold),
   interleaved: submit -> Running, submit -> Completed; and a bare container start.
g. A job in an environment's cached venv (``MLWS-python-3.11-minimal`` as a venv: the job runs
   in its own overlay of it), warm (a worker started from an overlay made ahead of time) vs
   cold (no agent), interleaved, and how many really ran warm.

The CLI runs as ``python -m jupyter_mlws.cli`` (the ``mlws`` script does the same; a version
manager's shim in front of it would add its own start-up). The package's bytecode is compiled
first, as an installed package's is (pip compiles it; with ``PYTHONDONTWRITEBYTECODE`` set and a
source checkout, every process would compile the package from source: see ``--no-compile``).

Run: python benchmarks/bench_jobs.py [--repeat N] [--jobs 50] [--no-docker] [--only-cli]
     [--parts abcdefg]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import make_notebook, percentiles, print_table  # noqa: E402

from jupyter_mlws import Workspace  # noqa: E402
from jupyter_mlws.agent import client  # noqa: E402
from jupyter_mlws.jobs.relay import OFFER_WAIT_S  # noqa: E402

CLI = [sys.executable, "-m", "jupyter_mlws.cli"]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


CPU: list[float] = []  # CPU seconds (user + system) of each process run by run()


def run(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``argv``; its CPU time (less sensitive to load) goes to ``CPU``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def agent_env(on: bool) -> dict[str, str]:
    return {**os.environ, "MLWS_JOB_AGENT": "1" if on else "0"}


def wait_warm(ws: Workspace, timeout: float = 120.0,
              python: str = sys.executable) -> dict[str, Any] | None:
    """Start the agent if needed and wait until a warm worker (of ``python``) is ready."""
    before = os.environ.get("MLWS_JOB_AGENT")
    os.environ["MLWS_JOB_AGENT"] = "1"  # (the agent reads it too)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = client.request(ws.path, {"op": "status"})[0]
            if status is None:  # (none yet, or the one just stopped is exiting)
                client.start_agent(ws.path, python=python)
            elif status.get("ready") and status["workers"].get(python):
                return status
            elif not status["workers"].get(python):  # an agent warming another interpreter
                client.request(ws.path, {"op": "claim", "python": python})
            time.sleep(0.05)
        return None
    finally:
        if before is not None:
            os.environ["MLWS_JOB_AGENT"] = before


def api_job(ws: Workspace, nb: Path, compute: str = "local", **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    job = ws.jobs.submit_notebook(nb, {"msg": "hi"}, compute=compute, **kw)
    done = ws.jobs.wait(job.id, timeout=3600, poll_s=0.01)
    total = time.perf_counter() - t0
    assert done.status == "Completed", ws.jobs.logs(job.id)
    assert ws.jobs.paths(job.id).notebook_out.exists()
    return total, done


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s"


def submit_only(ws: Workspace, argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one CLI submission; its job is then waited for (not timed), so jobs do
    not pile up under the next measure."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _pid, code, usage = os.wait4(proc.pid, 0)  # the CPU of this process alone (and what it
    wall = time.perf_counter() - t               # waited for), not of the detached runner
    proc.returncode = code
    assert code == 0, out
    CPU.append(usage.ru_utime + usage.ru_stime)
    ws.jobs.wait(out.split()[1].rstrip(":"), timeout=600, poll_s=0.02)
    return wall


def cli_figures(ws: Workspace, nb: Path, root: Path, repeat: int) -> list[tuple[str, ...]]:
    """(a) and (c), interleaved: papermill, cold CLI, warm CLI, submit-only fast and normal."""
    papermill, cold, warm, floor = [], [], [], []
    fast, normal, fast_cpu, normal_cpu = [], [], [], []
    base = [*CLI, "job", "notebook", str(nb), "-p", "msg", "hi", "-w", str(ws.path)]
    for i in range(repeat):
        papermill.append(run(["papermill", str(nb), str(root / f"pm{i}.ipynb"), "-p", "msg",
                              "hi"]))
        client.request(ws.path, {"op": "stop"})
        cold.append(run([*base, "--wait"], agent_env(False)))
        normal.append(submit_only(ws, base, agent_env(False)))  # (c) normal path, no agent
        normal_cpu.append(CPU[-1])
        wait_warm(ws)
        warm.append(run([*base, "--wait"], agent_env(True)))
        wait_warm(ws)
        fast.append(submit_only(ws, base, agent_env(True)))  # (c) fast path, agent running
        fast_cpu.append(CPU[-1])
        floor.append(run([sys.executable, "-c", "pass"]))
    p = statistics.median(papermill)
    p50, p95 = percentiles(fast)
    n50, n95 = percentiles(normal)
    return [
        ("a. CLI --wait, cold (no agent)", med(cold), f"{p:.2f} s papermill CLI",
         "<= 1.0x", f"{statistics.median(cold) / p:.2f}x"),
        ("a. CLI --wait, warm kernel (agent)", med(warm), f"{p:.2f} s papermill CLI",
         "<= 0.5x", f"{statistics.median(warm) / p:.2f}x"),
        ("c. CLI submit-only p50 / p95, fast path", f"{p50:.3f} / {p95:.3f} s",
         f"{n50:.3f} / {n95:.3f} s normal path (agent off)", "p50 < 0.3 s",
         "yes" if p50 < 0.3 else "NO"),
        ("c. CLI submit-only CPU (user+sys), fast", med(fast_cpu),
         f"{med(normal_cpu)} normal path", "(report)", ""),
        ("c. python -c pass", med(floor), "", "(floor)", ""),
    ]


def fast_breakdown(ws: Workspace, nb: Path, repeat: int) -> list[tuple[str, ...]]:
    """(c) where the fast path's time goes: imports (``-X importtime``) and the agent's part."""
    from jupyter_mlws.agent import fast

    wait_warm(ws)
    env = agent_env(True)
    imports = [run([sys.executable, "-c", "import jupyter_mlws.cli.entry, subprocess, "
                    "jupyter_mlws.agent.fast"], env) for _ in range(repeat)]
    trips = []
    for _ in range(repeat):  # the agent's part: request -> recorded -> runner started
        os.environ["MLWS_JOB_AGENT"] = "1"
        t = time.perf_counter()
        done = fast.submit(str(ws.path), {"notebook": str(nb), "parameters": [["msg", "hi"]],
                                          "output": "table"})
        trips.append(time.perf_counter() - t)
        os.environ["MLWS_JOB_AGENT"] = "0"
        assert isinstance(done, fast.Submitted), done
        ws.jobs.wait(done.job_id, timeout=600, poll_s=0.02)
    probe = subprocess.run([*CLI, "job", "notebook", str(nb), "-p", "msg", "hi", "-w",
                            str(ws.path)], env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
                           check=True, capture_output=True, text=True)
    rows = []  # "import time: self | cumulative | name", top-level imports only
    for line in probe.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if not name.startswith("  "):
                rows.append((int(parts[1]), name.strip()))
    ws.jobs.wait(probe.stdout.split()[1].rstrip(":"), timeout=600, poll_s=0.02)
    top = sorted(rows, reverse=True)[:6]
    return [("c. fast path: imports (python -c import ...)", med(imports), "", "(report)", ""),
            ("c. fast path: agent round trip (in-process)", med(trips), "", "(report)", ""),
            ("c. fast path: -X importtime, top imports", f"{sum(r[0] for r in rows) / 1e6:.3f} s",
             "", "(report)", ", ".join(f"{n} {us / 1000:.0f} ms" for us, n in top))]


KERNEL_SETUP = """
import os, time, papermill
os.environ['MLWS_WORKSPACE'] = {ws!r}
os.environ['MLWS_JOB_AGENT'] = '1'
get_ipython().run_line_magic('load_ext', 'jupyter_mlws')
"""
KERNEL_ROUND = """
t = time.perf_counter()
papermill.execute_notebook({nb!r}, {out!r}, parameters={{'msg': 'hi'}}, progress_bar=False)
pm = time.perf_counter() - t
t = time.perf_counter()
get_ipython().run_line_magic('submit', {line!r})
print('TIMES', pm, time.perf_counter() - t)
"""


def kernel_figures(ws: Workspace, nb: Path, root: Path, repeat: int) -> list[tuple[str, ...]]:
    """(b): ``%submit --wait`` and papermill, both in one live kernel, interleaved."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    outputs: list[str] = []

    def execute(code: str) -> None:
        outputs.clear()
        kc.execute_interactive(code, timeout=600, output_hook=lambda m: outputs.append(
            str(m.get("content", {}).get("text", ""))))

    try:
        execute(KERNEL_SETUP.format(ws=str(ws.path)))
        execute(KERNEL_ROUND.format(nb=str(nb), out=str(root / "k0.ipynb"),
                                    line=f"{nb} -p msg hi --wait"))  # warm-up: imports
        pm, sub = [], []
        for i in range(repeat):
            wait_warm(ws)
            execute(KERNEL_ROUND.format(nb=str(nb), out=str(root / f"k{i + 1}.ipynb"),
                                        line=f"{nb} -p msg hi --wait"))
            line = next(t for t in "".join(outputs).splitlines() if t.startswith("TIMES"))
            a, b = (float(x) for x in line.split()[1:])
            pm.append(a)
            sub.append(b)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    p = statistics.median(pm)
    return [("b. %submit --wait in a kernel (warm)", med(sub),
             f"{p:.2f} s papermill in that kernel", "(report)",
             f"{statistics.median(sub) / p:.2f}x")]


def breakdown(ws: Workspace, nb: Path, repeat: int) -> list[tuple[str, ...]]:
    """(e): the Python API, cold vs warm, and where a job's time goes."""
    rows = []
    for label, warm in (("cold", False), ("warm", True)):
        os.environ["MLWS_JOB_AGENT"] = "1" if warm else "0"
        totals, queued, running, after = [], [], [], []
        for _ in range(repeat):
            if warm:
                wait_warm(ws)
            else:
                client.request(ws.path, {"op": "stop"})
            t0 = time.time()
            total, job = api_job(ws, nb)
            totals.append(total)
            queued.append(job.started_at.timestamp() - job.created_at.timestamp())
            running.append(job.ended_at.timestamp() - job.started_at.timestamp())
            after.append(t0 + total - job.ended_at.timestamp())
        rows.append((f"e. API submit -> Completed, {label}", med(totals),
                     f"submitted -> Running {med(queued)}", "(report)",
                     f"Running {med(running)}; ended -> seen {med(after)}"))
    status = wait_warm(ws) or {}  # the pool refilled: its memory with a warm kernel
    rows.append(("e. agent: CPU (own / its workers)",
                 f"{status.get('cpu_s', 0):.2f} s / {status.get('children_cpu_s', 0):.2f} s",
                 f"{status.get('served', 0)} jobs served", "(report)",
                 f"pool memory {status.get('memory', 0) / 2**20:.0f} MiB, "
                 f"{status.get('ready', 0)} warm"))
    os.environ["MLWS_JOB_AGENT"] = "0"
    client.request(ws.path, {"op": "stop"})
    return rows


def slot_taken_at(ws: Workspace, job_id: str) -> int:
    text = (ws.jobs.paths(job_id).logs / "runner.log").read_text()
    return int(next(line.rsplit(" ", 1)[1] for line in text.splitlines()
                    if "took a slot" in line))


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (every process: /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def many_jobs(ws: Workspace, nb: Path, n: int) -> list[tuple[str, ...]]:
    """(d): n jobs at once at concurrency 2 against n/2 x one job (cold, agent off), and the
    machine's CPU time per job in both."""
    os.environ["MLWS_JOB_AGENT"] = "0"
    ws.computes.create("pair", type="local", max_concurrent_jobs=2)
    lone, cpu_lone = [], []
    for _ in range(3):  # a lone job: no runner of a job just ended offers itself (relay.py)
        time.sleep(OFFER_WAIT_S + 0.5)
        cpu0 = busy_cpu_s()
        lone.append(api_job(ws, nb, "pair")[0])
        cpu_lone.append(busy_cpu_s() - cpu0)
    single, cpu_single = statistics.median(lone), statistics.median(cpu_lone)
    in_a_row = statistics.median(api_job(ws, nb, "pair")[0] for _ in range(3))
    cpu0 = busy_cpu_s()
    t0 = time.perf_counter()
    ids = [ws.jobs.submit_notebook(nb, {"msg": str(i)}, compute="pair").id for i in range(n)]
    submitted = time.perf_counter() - t0
    finished = [ws.jobs.wait(i, timeout=3600, poll_s=0.05) for i in ids]
    total = time.perf_counter() - t0
    cpu_many = (busy_cpu_s() - cpu0) / n
    ok = sum(j.status == "Completed" for j in finished)
    taken = [slot_taken_at(ws, i) for i in ids]
    fifo = taken == sorted(taken)
    ideal = single * n / 2
    return [(f"d. {n} jobs at once, concurrency 2", f"{total:.1f} s",
             f"{ideal:.1f} s ({n // 2} x single {single:.2f} s)", "<= 1.1x",
             f"{total / ideal:.2f}x; {ok}/{n} completed; slots taken in order: {fifo}"),
            (f"d. {n} jobs: time to submit all", f"{submitted:.2f} s", "", "", ""),
            ("d. one job right after another (its runner relayed)", f"{in_a_row:.2f} s",
             f"{single:.2f} s a lone job", "(report)",
             f"{total / (in_a_row * n / 2):.2f}x of {n // 2} x this"),
            ("d. machine CPU per job (all processes)", f"{cpu_many:.2f} s in the batch",
             f"{cpu_single:.2f} s alone", "(report)",
             f"a lone job keeps {cpu_single / single:.2f} of the {os.cpu_count()} cores busy"),
            one_at_a_time(ws, nb, single, max(4, n // 5))]


def one_at_a_time(ws: Workspace, nb: Path, single: float, n: int) -> tuple[str, ...]:
    """(d) without the cores: ``n`` jobs at once on a compute of one slot against ``n`` x one
    job - what the queue itself adds (the hand-over from one job to the next)."""
    ws.computes.create("one", type="local", max_concurrent_jobs=1)
    t0 = time.perf_counter()
    ids = [ws.jobs.submit_notebook(nb, {"msg": str(i)}, compute="one").id for i in range(n)]
    finished = [ws.jobs.wait(i, timeout=3600, poll_s=0.05) for i in ids]
    total = time.perf_counter() - t0
    ok = sum(j.status == "Completed" for j in finished)
    return (f"d. {n} jobs at once, concurrency 1", f"{total:.1f} s",
            f"{single * n:.1f} s ({n} x single)", "(report)",
            f"{total / (single * n):.2f}x; {ok}/{n} completed")


MINIMAL = "MLWS-python-3.11-minimal"  # (ipykernel and papermill: runs notebooks)


def venv_python_of(ws: Workspace, env: str) -> str:
    from jupyter_mlws.environments.venv_builder import venv_python

    return str(venv_python(Path(ws.environments.build(env, builder="venv").image)))


def venv_figures(ws: Workspace, nb: Path, repeat: int) -> list[tuple[str, ...]]:
    """(g): a job in an environment's cached venv (it runs in its own overlay of it), cold (no
    agent: the overlay is made in the job's folder) vs warm (a worker started from an overlay
    made ahead of time), interleaved."""
    python = venv_python_of(ws, MINIMAL)
    os.environ["MLWS_JOB_AGENT"] = "0"
    api_job(ws, nb, environment=MINIMAL)  # warm-up
    cold, warm, served = [], [], 0
    for _ in range(repeat):
        os.environ["MLWS_JOB_AGENT"] = "0"
        client.request(ws.path, {"op": "stop"})
        cold.append(api_job(ws, nb, environment=MINIMAL)[0])
        before = (wait_warm(ws, python=python) or {}).get("served", 0)
        os.environ["MLWS_JOB_AGENT"] = "1"
        warm.append(api_job(ws, nb, environment=MINIMAL)[0])
        after = (client.request(ws.path, {"op": "status"})[0] or {}).get("served", 0)
        served += after - before
    os.environ["MLWS_JOB_AGENT"] = "0"
    client.request(ws.path, {"op": "stop"})
    c, w = statistics.median(cold), statistics.median(warm)
    return [(f"g. cached-venv env ({MINIMAL}), API submit -> Completed, warm", med(warm),
             f"{c:.2f} s cold (no agent)", "(report)",
             f"{w / c:.2f}x; {served}/{repeat} ran on a warm worker")]


def docker_figures(ws: Workspace, nb: Path, repeat: int) -> list[tuple[str, ...]]:
    """(f): the same notebook job in the same environment on ``compute: docker`` (a container
    started per job, no warm pool) and on local compute (cold: no agent), interleaved."""
    from jupyter_mlws.docker_engine import docker_client

    client_ = docker_client()
    ws.computes.create("box", type="docker", max_concurrent_jobs=2)
    image = ws.environments.build(MINIMAL, builder="docker").image  # cached after this
    venv_python_of(ws, MINIMAL)
    os.environ["MLWS_JOB_AGENT"] = "0"
    client.request(ws.path, {"op": "stop"})
    runs, local = [], []
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        job = ws.jobs.submit_notebook(nb, {"msg": "hi"}, compute="box", environment=MINIMAL)
        running = None
        while not (j := ws.jobs.get(job.id)).done:
            if running is None and j.status == "Running":
                running = time.perf_counter() - t0
            time.sleep(0.02)
        assert j.status == "Completed", ws.jobs.logs(job.id)
        took = api_job(ws, nb, environment=MINIMAL)[0]
        if i:  # the first round warms up
            runs.append((running or 0.0, time.perf_counter() - t0 - took))
            local.append(took)
    starts = []
    for _ in range(repeat):
        t = time.perf_counter()
        client_.containers.run(image, ["true"], remove=True)
        starts.append(time.perf_counter() - t)
    total = statistics.median(r[1] for r in runs)
    return [("f. docker notebook job: submit -> Running", med([r[0] for r in runs]), "",
             "(report)", ""),
            ("f. docker notebook job: submit -> Completed", f"{total:.2f} s",
             f"{statistics.median(local):.2f} s local, same env, cold", "(report)",
             f"{total / statistics.median(local):.2f}x"),
            ("f. container start (docker run --rm IMAGE true)", med(starts), "", "(report)", "")]


def other_figures(ws: Workspace, nb: Path, root: Path, args: Any) -> list[tuple[str, ...]]:
    """(b), (d), (e), (g) and (f)."""
    rows: list[tuple[str, ...]] = []
    if "b" in args.parts:
        rows += kernel_figures(ws, nb, root, args.repeat)
    if "e" in args.parts:
        rows += breakdown(ws, nb, args.repeat)
    if "g" in args.parts:
        rows += venv_figures(ws, nb, args.repeat)
    rows.append(("load average", load(), "", "", ""))
    if "d" in args.parts:
        rows += many_jobs(ws, nb, args.jobs)
    if "f" in args.parts and not args.no_docker:
        rows += docker_figures(ws, nb, args.repeat)
        rows.append(("load average", load(), "", "", ""))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--only-cli", action="store_true", help="Only (a) and (c).")
    ap.add_argument("--parts", default="abcdefg",
                    help="The parts to run (letters; default all): e.g. --parts fg.")
    ap.add_argument("--no-compile", action="store_true",
                    help="Do not compile the package's bytecode first.")
    args = ap.parse_args()
    if not args.no_compile:
        import compileall

        import jupyter_mlws

        compileall.compile_dir(Path(jupyter_mlws.__file__).parent, quiet=1)
    if args.only_cli:
        args.parts = "ac"
    rows: list[tuple[str, ...]] = [("load average at start", load(), "", "", "")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.init(root / "p")
        nb = make_notebook(root / "code" / "simple_execute.ipynb", "print(msg)",
                           parameters="msg = None")
        os.environ["MLWS_JOB_AGENT"] = "0"
        api_job(ws, nb)  # warm up: imports, kernel spec cache, the snapshot's blobs
        run(["papermill", str(nb), str(root / "warm.ipynb"), "-p", "msg", "hi"])
        try:
            if set(args.parts) & set("ac"):
                rows += cli_figures(ws, nb, root, args.repeat)
                rows.append(("load average", load(), "", "", ""))
                rows += fast_breakdown(ws, nb, args.repeat)
                rows.append(("load average", load(), "", "", ""))
            if set(args.parts) & set("bdefg"):
                rows += other_figures(ws, nb, root, args)
        finally:
            client.request(ws.path, {"op": "stop"})
            ws.close()
    rows.append(("load average at end", load(), "", "", ""))
    print_table(rows)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
