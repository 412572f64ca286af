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
    """``invoke(*args, code=0, stdout=False)``: runs ``mlws ARGS...`` in-process and asserts
    its exit code; returns the click ``Result`` (or its output text with ``output=True``: stdout
    and stderr as a terminal shows them, or stdout alone with ``stdout=True``, as a script
    piping ``-o json`` gets it)."""
    from click.testing import CliRunner

    from jupyter_mlws.cli import main

    runner = CliRunner()

    def invoke(*args: str, code: int = 0, stdout: bool = False) -> Any:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        if stdout:
            return result.stdout
        return result.output if output else result

    return invoke


def drop_cached_image(ws: Any, env: Any) -> None:
    """Start without an image of ``env``'s hash (one left by an interrupted run would be reused)."""
    stale = ws.environments.lookup(env)
    if stale is not None:
        ws.environments._docker().remove(stale.image_id, force=True)
