"""Run a notebook with papermill inside the job's environment, and report how it went.

Runs under the environment's interpreter, which has papermill and ipykernel but not the rest of
jupyter_mlws: this module imports only the standard library, papermill and jupyter_client.

    python -m jupyter_mlws.jobs.nbrun INPUT OUTPUT PARAMS_JSON RESULT_JSON

The kernel: the notebook's own kernelspec when this environment has it, otherwise the
environment's Python kernel, so a kernelspec name from another machine never fails a job.
``sys.exit(0)`` (or ``sys.exit()``) in a cell ends the notebook successfully.

The kernel is started as papermill's engine (nbclient) starts it, but before papermill is
imported: the kernel's process boots while this one imports papermill (a second or so each).
It is shut down as nbclient would (gracefully) when the notebook has run, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

#: nbclient's ``ipython_hist_file``: the history of an IPython kernel it starts.
HIST_ARG = "--HistoryManager.hist_file=:memory:"
#: Optional modules that papermill's imports load and this process never uses:
#: ``rfc3987_syntax`` lets jsonschema (nbformat imports it) check the ``iri`` format of draft 7+
#: schemas, and compiles about forty grammars when imported (over a second of CPU); nbformat's
#: schemas are draft 4 and name no format. The others are the clients of papermill's remote
#: notebook stores (S3, Azure, GCS, HDFS through pyarrow, GitHub), each imported when installed;
#: this process reads and writes the job's own folder only (boto3 and pyarrow: about 0.3 s of
#: CPU per job). The job's kernel is another process: unaffected.
UNUSED_MODULES = ("rfc3987_syntax", "boto3", "pyarrow", "gcsfs", "github", "azure.identity",
                  "azure.storage.blob", "azure.datalake.store")


def skip_unused_modules() -> None:
    """Keep :data:`UNUSED_MODULES` from loading in this process (before papermill is
    imported; the libraries importing them do without, as when they are not installed)."""
    for name in UNUSED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def kernel_specs() -> Any:
    """jupyter_client's kernelspec manager, looking where its default one looks (the Jupyter
    data folders, then the IPython folder's ``kernels``) without importing IPython to find that
    folder (half a second of CPU; the kernel's own process imports it anyway)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_core.paths import jupyter_path

    ipython_dir = os.environ.get("IPYTHONDIR") or os.path.join(os.path.expanduser("~"),
                                                               ".ipython")
    return KernelSpecManager(kernel_dirs=[*jupyter_path("kernels"),
                                          os.path.join(ipython_dir, "kernels")])


def choose_kernel(notebook: dict[str, Any]) -> tuple[str, str | None]:
    """The kernel to use, and a note when it differs from the notebook's."""
    wanted = (notebook.get("metadata", {}).get("kernelspec") or {}).get("name")
    try:
        available = set(kernel_specs().find_kernel_specs())
    except Exception:
        available = set()
    if wanted and wanted in available:
        return wanted, None
    return "python3", (f"the notebook's kernel {wanted!r} is not in this environment; "
                       "using its Python kernel" if wanted and wanted != "python3" else None)


def _write(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(path)


def main(argv: list[str], km: Any = None) -> int:
    """Run the notebook; ``km``: a kernel manager whose kernel is started already (a warm
    kernel of the job agent, see :mod:`jupyter_mlws.agent.worker`), used for this run only."""
    skip_unused_modules()
    src, dst, params_path, result_path = (Path(a) for a in argv[:4])
    notebook = json.loads(src.read_text())
    parameters = json.loads(params_path.read_text()) if params_path.exists() else {}
    kernel, note = choose_kernel(notebook)
    if note:
        print(f"[mlws] {note}", flush=True)
    print(f"[mlws] running {src.name} with kernel {kernel}", flush=True)

    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    early = start_kernel(kernel) if km is None else None
    try:
        report, code = _execute(src, dst, parameters, kernel, km or early)
    finally:
        if early is not None:
            shutdown_kernel(early)
    _write(result_path, report)
    print(f"[mlws] {report.get('message') or 'the notebook completed'}", flush=True)
    return code


def start_kernel(kernel: str) -> Any:
    """The kernel ``kernel`` started as nbclient starts it for papermill (an
    ``AsyncKernelManager`` on the thread's event loop, IPython history in memory), or ``None``
    (papermill then starts it, and says why it cannot). Until it is shut down, a SIGTERM
    stops the kernel with this process (without, the kernel notices its parent is gone)."""
    try:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        km = AsyncKernelManager(kernel_name=kernel,
                                kernel_spec_manager=kernel_specs())
        run_sync(km.start_kernel)(extra_arguments=[HIST_ARG] if km.ipykernel else [])
    except Exception:
        return None

    def on_term(signum: int, _frame: Any) -> None:
        _kill(km)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    with contextlib.suppress(ValueError):  # (not the main thread)
        signal.signal(signal.SIGTERM, on_term)
    return km


#: How long a kernel asked to shut down on its shell channel has before the standard shutdown.
SHELL_SHUTDOWN_S = 1.0


def shutdown_kernel(km: Any) -> None:
    """What nbclient does with a kernel it started, once the notebook has run: a graceful
    shutdown (its ``atexit`` hooks run), then its files removed.

    The request goes on the shell channel (which takes ``shutdown_request`` too), so the
    kernel handles it on its main thread. Sent on the control channel, as jupyter_client
    does, ipykernel 7's control thread was sometimes still sending its last messages when the
    main thread closed the IOPub thread. It then blocked for good, and the kernel exited only
    at jupyter_client's SIGTERM 2.5 s later: 1 run in 6 to 20 here, +2.4 s each. A kernel
    still running code (a failed or stopped run) gets jupyter_client's standard shutdown
    after :data:`SHELL_SHUTDOWN_S`: interrupt, control channel, then signals."""
    from jupyter_core.utils import run_sync

    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        if run_sync(km.is_alive)() and not _shut_down_on_shell(km, run_sync):
            run_sync(km.shutdown_kernel)(now=False)
        else:
            run_sync(km.finish_shutdown)(pollinterval=0.01)  # (reaps the process)
    except Exception:
        _kill(km)
    finally:
        with contextlib.suppress(Exception):
            run_sync(km.cleanup_resources)()


def _shut_down_on_shell(km: Any, run_sync: Any) -> bool:
    """Ask for a shutdown on the shell channel; whether the kernel exited in time."""
    import time

    kc = km.client()
    kc.start_channels(iopub=False, stdin=False, hb=False, control=False)
    try:
        kc.shell_channel.send(kc.session.msg("shutdown_request", {"restart": False}))
        deadline = time.monotonic() + SHELL_SHUTDOWN_S
        while time.monotonic() < deadline:
            if not run_sync(km.is_alive)():
                return True
            time.sleep(0.01)
        return False
    finally:
        kc.stop_channels()


def _kill(km: Any) -> None:
    pid = getattr(getattr(km, "provisioner", None), "pid", None)
    if pid:
        with contextlib.suppress(OSError):
            os.killpg(int(pid), signal.SIGKILL)  # (the kernel's own session)


def _execute(src: Path, dst: Path, parameters: dict[str, Any], kernel: str,
             km: Any) -> tuple[dict[str, Any], int]:
    """Run the notebook with papermill (on ``km``'s kernel when given): the report and the
    exit code."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    report: dict[str, Any] = {"status": "completed", "kernel": kernel}
    code = 0
    try:
        papermill.execute_notebook(
            str(src), str(dst), parameters=parameters, kernel_name=kernel,
            log_output=True, progress_bar=False, request_save_on_cell_execute=True,
            cwd=str(Path.cwd()), **({"km": km} if km is not None else {}),
        )
    except PapermillExecutionError as exc:
        index = _failing_cell_index(dst, exc.exec_count)
        if exc.ename == "SystemExit" and str(exc.evalue).strip() in ("", "0", "None"):
            report["message"] = f"the notebook stopped with sys.exit({exc.evalue}) in cell {index}"
        else:
            report = {
                "status": "failed", "kernel": kernel, "cell_index": index,
                "exec_count": exc.exec_count, "ename": exc.ename, "evalue": exc.evalue,
                "message": f"cell {index} failed: {exc.ename}: {exc.evalue}",
            }
            code = 1
    except Exception as exc:  # the kernel died, could not start, or papermill itself failed
        name = type(exc).__name__
        if "DeadKernel" in name or "dead" in str(exc).lower():
            message = (f"the kernel died ({exc}); it may have been killed for memory. The "
                       "output notebook keeps the cells that ran.")
        else:
            message = f"the notebook could not run: {name}: {exc}"
        report = {"status": "failed", "kernel": kernel, "ename": name, "evalue": str(exc),
                  "message": message}
        code = 2
    return report, code


def _failing_cell_index(output: Path, exec_count: int | None) -> int | None:
    """The index (0-based, in the submitted notebook) of the cell whose execution failed.

    Cells papermill adds (injected parameters, error banners) are not counted: the index
    points at the user's cell.
    """
    try:
        cells = json.loads(output.read_text())["cells"]
    except Exception:
        return None
    index = 0
    for cell in cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("exception") or (exec_count is not None
                                     and cell.get("execution_count") == exec_count
                                     and cell.get("cell_type") == "code"):
            return index
        index += 1
    return None


if __name__ == "__main__":
    code = main(sys.argv[1:])
    import gc

    gc.freeze()  # (exit without collecting every object first: tenths of a second; atexit runs)
    sys.exit(code)
