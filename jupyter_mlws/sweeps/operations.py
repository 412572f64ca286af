"""The sweep part of ``ws.jobs``: submit a sweep, view its trials, find its best trial."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_mlws.jobs.model import Job
    from jupyter_mlws.sweeps.view import SweepView
    from jupyter_mlws.workspace import Workspace


class SweepOperations:
    """Mixed into ``ws.jobs``: ``submit_sweep``, ``sweep_view``, ``best_trial``."""

    _ws: Workspace

    def submit_sweep(self, spec: Mapping[str, Any], *, base_dir: str | Path | None = None,
                     compute: str | None = None, experiment: str | None = None) -> Job:
        """Start a sweep from a ``sweepJob``-shaped mapping (see :mod:`jupyter_mlws.sweeps.spec`);
        relative paths are read from ``base_dir`` (default: the current folder)."""
        from jupyter_mlws.sweeps.submit import submit_sweep

        return submit_sweep(self._ws, spec, base_dir=Path(base_dir) if base_dir else None,
                            compute=compute, experiment=experiment)

    def sweep_view(self, job_id: str) -> SweepView:
        """The sweep's trials sorted by its objective, and its best trial."""
        from jupyter_mlws.sweeps.view import build_sweep_view

        return build_sweep_view(self._ws, job_id)

    def best_trial(self, job_id: str) -> str:
        """The job id of the sweep's best trial (NotFoundError saying why when none)."""
        from jupyter_mlws.sweeps.view import best_trial

        return best_trial(self._ws, job_id)
