"""Where a job keeps its files, inside the workspace's artifact folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The format version of ``launch.json`` this package writes and reads (see ``jobs.launch``).
LAUNCH_VERSION = 1


@dataclass(frozen=True)
class JobPaths:
    """``artifacts/jobs/<id>/``: code, notebook, logs, run files, inputs and outputs."""

    root: Path

    @classmethod
    def of(cls, artifacts_root: Path, job_id: str) -> JobPaths:
        return cls(artifacts_root / "jobs" / job_id)

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def job_log(self) -> Path:
        """What the job printed (stdout and stderr, in order)."""
        return self.logs / "job.log"

    @property
    def prepare_log(self) -> Path:
        """The environment build or lookup that preceded the run."""
        return self.logs / "prepare.log"

    @property
    def run(self) -> Path:
        """Metrics and parameters the job logs with ``jupyter_mlws.run``."""
        return self.root / "run"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def notebook_in(self) -> Path:
        return self.root / "notebook" / "input.ipynb"

    @property
    def notebook_out(self) -> Path:
        return self.root / "notebook" / "output.ipynb"

    @property
    def params_file(self) -> Path:
        return self.root / "notebook" / "parameters.json"

    @property
    def result(self) -> Path:
        """What the notebook runner reports (failing cell, error, kernel death).

        It sits in ``notebook/``, a folder the job may write, since the job's root is read-only
        to a job in a container."""
        return self.root / "notebook" / "result.json"

    @property
    def launch(self) -> Path:
        """What the submitter prepared for the runner: command, environment, limits."""
        return self.root / "launch.json"

    @property
    def runner_lock(self) -> Path:
        """Held by the runner while it lives; free means the runner is gone."""
        return self.root / "runner.lock"

    @property
    def cancel_flag(self) -> Path:
        return self.root / "cancel"

    @property
    def child_pid(self) -> Path:
        """Who the job's process is (pid, start time, token), for the reaper to check."""
        return self.root / "child.pid"

    @property
    def venvs(self) -> Path:
        """The job's own venvs layered over cached ones, where its ``pip install`` goes."""
        return self.root / "venv"

    @property
    def user_logs(self) -> Path:
        """What the job writes to ``./logs`` (Azure's convention), kept beside the host's logs."""
        return self.logs / "user"

    def job_writable(self) -> list[Path]:
        """The folders a job may write; the rest of its folder (its own log included) is the
        host's."""
        return [self.code, self.outputs, self.run, self.notebook_in.parent, self.user_logs]

    def make(self) -> None:
        for d in (self.root, self.logs, self.run, self.outputs, self.inputs,
                  self.notebook_in.parent, self.user_logs):
            d.mkdir(parents=True, exist_ok=True)
