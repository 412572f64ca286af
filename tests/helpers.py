"""Helpers shared by the test suites: notebooks made on the fly, and settling jobs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat


def make_notebook(path: Path, *cells: str, parameters: str | None = None,
                  kernel: str = "python3") -> Path:
    """A notebook of code cells (the first one tagged ``parameters`` when given)."""
    nb = nbformat.v4.new_notebook()
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    display = "Python 3" if kernel == "python3" else kernel
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": display, "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def stop_jobs(ws: Any, timeout: float = 30) -> None:
    """Cancel what is still running and wait for every job to settle."""
    for job in ws.jobs.list(status=["Queued", "Preparing", "Running"], include_children=True):
        ws.jobs.cancel(job.id)
    for job in ws.jobs.list(include_children=True, limit=None):
        with contextlib.suppress(TimeoutError):
            ws.jobs.wait(job.id, timeout=timeout)


def cli_invoker(output: bool = False) -> Callable[..., Any]:
    """``invoke(*args, code=0)``: runs ``mlws ARGS...`` in-process and asserts its exit code;
    returns the click ``Result`` (or its output text with ``output=True``)."""
    from click.testing import CliRunner

    from jupyter_mlws.cli import main

    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output if output else result

    return invoke


def drop_cached_image(ws: Any, env: Any) -> None:
    """Start without an image of ``env``'s hash (one left by an interrupted run would be reused)."""
    stale = ws.environments.lookup(env)
    if stale is not None:
        ws.environments._docker().remove(stale.image_id, force=True)


#: Servers started once for a whole ``pytest -n N`` run: their records, in the run's temp folder
#: (the parent of every worker's), are read by :func:`stop_run_servers` when the run ends.
RUN_SERVERS = "run-servers"


@contextlib.contextmanager
def run_server(tmp_path_factory: Any, name: str, up: Callable[[], dict[str, Any]],
               down: Callable[[dict[str, Any]], None]) -> Any:
    """The record ``up()`` returns (JSON: its ``down`` argv and ``remove`` folders stop it),
    made once per run: under pytest-xdist the first worker to ask starts the server, the others
    reuse it, and the controller stops it when the run ends (:func:`stop_run_servers`); without
    xdist it is stopped by ``down`` when the session ends."""
    import json
    import os

    from filelock import FileLock

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        record = up()
        try:
            yield record
        finally:
            down(record)
        return
    folder = Path(tmp_path_factory.getbasetemp()).parent / RUN_SERVERS
    folder.mkdir(exist_ok=True)
    with FileLock(str(folder / f"{name}.lock")):
        path = folder / f"{name}.json"
        if path.exists():
            record = json.loads(path.read_text())
        else:
            record = up()
            path.write_text(json.dumps(record))
    yield record


def stop_run_servers(basetemp: Path) -> None:
    """Stop every server :func:`run_server` started in the run whose temp folder is ``basetemp``."""
    import json
    import shutil
    import subprocess

    for path in sorted((basetemp / RUN_SERVERS).glob("*.json")):
        record = json.loads(path.read_text())
        subprocess.run(record["down"], capture_output=True, timeout=120, check=False)
        for folder in record.get("remove", []):
            shutil.rmtree(folder, ignore_errors=True)
        path.unlink()
