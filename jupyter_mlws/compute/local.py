"""``local``: the job is a process on this machine, in its own venv layered over the
environment's cached virtualenv (see ``job_venv``), or in the current interpreter when the job
names no environment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.compute.base import STOP_GRACE_S, ComputeTarget, RunContext, Runtime
from jupyter_mlws.compute.job_venv import is_cached_venv, make_overlay, overlay_env
from jupyter_mlws.errors import MlwsError
from jupyter_mlws.jobs.mlflow_store import add_tracking_env
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.jobs.process_identity import TOKEN_VAR, ProcessIdentity, new_token
from jupyter_mlws.jobs.safe_files import open_log_for_append

if TYPE_CHECKING:
    from jupyter_mlws.jobs.launch import Launch

NOTEBOOK_MODULES = ("papermill", "ipykernel")


def _set_parent_death_signal() -> None:
    """In the child: die with the runner (Linux), so no job outlives its watcher."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class LocalHandle:
    """A process group started by the runner."""

    def __init__(self, proc: subprocess.Popen[bytes], started_at: float) -> None:
        self.proc = proc
        self.started_at = started_at
        self.overlays: Path | None = None  # the job's own venvs, removed when it ends

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        if self.proc.poll() is not None:
            self._kill_group(signal.SIGKILL)  # a kernel left behind by a dead parent
            return
        self._kill_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        self._kill_group(signal.SIGKILL)
        self.proc.wait()

    def _kill_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def close(self) -> None:
        self._kill_group(signal.SIGKILL)  # anything still in the job's group
        if self.overlays is not None:  # (rmtree follows no link the job made)
            shutil.rmtree(self.overlays, ignore_errors=True)


def start_process(argv: list[str], *, cwd: str, env: dict[str, str], log_path: Path,
                  pid_file: Path | None = None) -> LocalHandle:
    """Start ``argv`` in its own process group, appending its output to ``log_path``.

    With ``pid_file``, the process gets a token in its environment (``MLWS_JOB_TOKEN``) and
    ``pid_file`` records its identity (PID, start time, token) for the reaper to check.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    if pid_file is not None:
        env = {**env, TOKEN_VAR: token}
    with open_log_for_append(log_path) as log:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_set_parent_death_signal if sys.platform.startswith("linux") else None,
        )
    if pid_file is not None:
        ProcessIdentity.of(proc.pid, token).write(pid_file)
    return LocalHandle(proc, time.time())


def local_env(launch: Launch, python: str) -> dict[str, str]:
    """The job's environment variables for a process on this machine."""
    from jupyter_mlws.crypto import ENV_SECRET_KEY

    env = dict(os.environ)
    # the secret key opens every stored credential: a job's code never needs it
    for key in ("VIRTUAL_ENV", "PYTHONHOME", "JPY_PARENT_PID", "JPY_SESSION_NAME",
                ENV_SECRET_KEY):
        env.pop(key, None)
    env.update(launch.env)
    add_tracking_env(env, launch.env, cwd=launch.cwd)
    bindir = str(Path(python).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if python != sys.executable and (Path(bindir).parent / "pyvenv.cfg").exists():
        env["VIRTUAL_ENV"] = str(Path(bindir).parent)
    extra = launch.pythonpath
    if extra:
        env["PYTHONPATH"] = extra + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    return env


def local_argv(launch: Launch, python: str) -> list[str]:
    return [python if a == "{python}" else a for a in launch.argv]


def start_job(launch: Launch, python: str, paths: JobPaths) -> LocalHandle:
    """Start the job's process with ``python``; in a cached venv, in the job's own overlay of it
    (so a ``pip install`` in the job changes neither the cached venv nor other jobs), removed
    when the job ends."""
    env = local_env(launch, python)
    cached = is_cached_venv(python)
    if cached:
        overlay = make_overlay(Path(python), paths.venvs)
        env = overlay_env(local_env(launch, str(overlay)), overlay, Path(python))
        python = str(overlay)
    handle = start_process(local_argv(launch, python), cwd=launch.cwd, env=env,
                           log_path=paths.job_log, pid_file=paths.child_pid)
    if cached:
        handle.overlays = paths.venvs
    return handle


class LocalTarget(ComputeTarget):
    kind = "local"

    def _python_for(self, launch: Launch, *, build: bool,
                    log: Any = None) -> Runtime | None:
        env_ref = launch.environment
        if not env_ref:
            return Runtime(python=sys.executable, env_hash=None,
                           details={"interpreter": "current"})
        env = self.services.environment(env_ref)
        result: Any
        if build:
            result = self.services.build_environment(env, "venv", log=log)
        else:
            result = self.services.lookup_environment(env, "venv")
            if result is None:
                return None
        from jupyter_mlws.environments.venv_builder import venv_python

        return Runtime(python=str(venv_python(Path(result.image))), env_hash=env.env_hash,
                       details={"venv": result.image})

    def plan(self, launch: Launch) -> Runtime | None:
        runtime = self._python_for(launch, build=False)
        if runtime is not None and launch.kind == "notebook":
            self._check_notebook_runtime(runtime, launch)
        return runtime

    def prepare(self, ctx: RunContext) -> Runtime:
        ctx.prepare_log("[mlws] preparing the environment "
                        f"{ctx.launch.environment or '(current interpreter)'}"
                        " as a virtualenv on this machine")
        runtime = self._python_for(ctx.launch, build=True, log=ctx.prepare_log)
        assert runtime is not None
        if ctx.launch.kind == "notebook":
            self._check_notebook_runtime(runtime, ctx.launch)
        return runtime

    @staticmethod
    def _check_notebook_runtime(runtime: Runtime, launch: Launch) -> None:
        assert runtime.python
        if runtime.python == sys.executable:
            import importlib.util

            missing = [m for m in NOTEBOOK_MODULES if importlib.util.find_spec(m) is None]
        else:
            probe = ("import importlib.util as u, sys; "
                     f"print(' '.join(m for m in {NOTEBOOK_MODULES!r} if u.find_spec(m) is None))")
            out = subprocess.run([runtime.python, "-c", probe], capture_output=True, text=True,
                                 timeout=60)
            missing = out.stdout.split()
        if missing:
            raise MlwsError(
                f"The environment {launch.environment or '(current interpreter)'} cannot "
                f"run notebooks: it lacks {', '.join(missing)}.",
                hint="Add papermill and ipykernel to its pip packages (or start from "
                "`mlws env create --from MLWS-python-3.11-minimal --name mine`).",
            )

    def start(self, ctx: RunContext, runtime: Runtime) -> LocalHandle:
        assert runtime.python
        return start_job(ctx.launch, runtime.python, ctx.paths)
