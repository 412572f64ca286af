"""Notebooks made for the job tests, and a workspace whose jobs are stopped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest

from jupyter_mlws import Workspace


def make_notebook(path: Path, *cells: str, parameters: str | None = None,
                  kernel: str = "python3") -> Path:
    nb = nbformat.v4.new_notebook()
    if parameters is not None:
        nb.cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(*cells: str, parameters: str | None = None, kernel: str = "python3",
             folder: str = "code") -> Path:
        return make_notebook(tmp_path / folder / f"nb{next(counter)}.ipynb", *cells,
                             parameters=parameters, kernel=kernel)

    return make


@pytest.fixture
def jws(ws: Workspace) -> Iterator[Workspace]:
    """A workspace whose unfinished jobs are canceled when the test ends."""
    yield ws
    for job in ws.jobs.list(status=["Queued", "Preparing", "Running"], include_children=True):
        ws.jobs.cancel(job.id)
    for job in ws.jobs.list(include_children=True, limit=None):
        with contextlib.suppress(TimeoutError):
            ws.jobs.wait(job.id, timeout=30)
