"""Notebooks made for the job tests, and a workspace whose jobs are stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from tests.helpers import make_notebook, stop_jobs


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
    stop_jobs(ws)
