"""Run a notebook with papermill inside the job's environment, and report how it went.

Runs under the environment's interpreter, which has papermill and ipykernel but not the rest of
jupyter_mlws: this module imports only the standard library, papermill and jupyter_client.

    python -m jupyter_mlws.jobs.nbrun INPUT OUTPUT PARAMS_JSON RESULT_JSON

The kernel: the notebook's own kernelspec when this environment has it, otherwise the
environment's Python kernel, so a kernelspec name from another machine never fails a job.
``sys.exit(0)`` (or ``sys.exit()``) in a cell ends the notebook successfully.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def choose_kernel(notebook: dict[str, Any]) -> tuple[str, str | None]:
    """The kernel to use, and a note when it differs from the notebook's."""
    wanted = (notebook.get("metadata", {}).get("kernelspec") or {}).get("name")
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        available = set(KernelSpecManager().find_kernel_specs())
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
    _write(result_path, report)
    print(f"[mlws] {report.get('message') or 'the notebook completed'}", flush=True)
    return code


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
    sys.exit(main(sys.argv[1:]))
