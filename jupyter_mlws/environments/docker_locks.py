"""Locks in the Docker builder: build a managed image from the recorded lock, or adopt the lock
an image built elsewhere keeps (see :mod:`.locks`)."""

from __future__ import annotations

from collections.abc import Callable

from jupyter_mlws.environments.build_plan import BuildPlan
from jupyter_mlws.environments.builds import BuildResult, LockSource
from jupyter_mlws.environments.locks import (
    lock_failure,
    lock_lines_from_log,
    one_line_requirements,
    parse_lock,
    render_lock,
)
from jupyter_mlws.errors import BuildError

__all__ = ["adopt_lock", "build_locked"]


def build_locked(build: Callable[[], BuildResult], h: str, environment: str,
                 log: Callable[[str], None], plan: BuildPlan | None,
                 lock_for: LockSource | None) -> BuildResult:
    """Run ``build`` with ``plan``'s requirements replaced by the hash's lock when there is one
    (installed with ``--no-deps``); a lock that no longer installs raises
    :class:`~jupyter_mlws.errors.LockInstallError`. The result carries the lock."""
    lock = lock_for(plan.python.version) if plan is not None and lock_for else None
    if lock and plan is not None:
        log(f"Installing the recorded lock of {h[:12]} (Python {plan.python.version})")
        plan.requirements = parse_lock(lock).requirements
        plan.locked = True
    try:
        result = build()
    except BuildError as exc:
        failure = lock_failure(exc.log_tail or "", parse_lock(lock), environment) if lock else None
        if failure is not None:
            failure.log_tail = exc.log_tail
            raise failure from exc
        raise
    if plan is not None:
        result.lock_python = plan.python.version
        result.from_lock = bool(lock)
        lines = lock_lines_from_log(result.log)
        tool = "uv" if plan.uv_binary else "pip"
        result.lock = lock or (render_lock(lines, env_hash=h, python=plan.python.version,
                                           tool=tool) if lines is not None else None)
    return result


def adopt_lock(hit: BuildResult, lines: list[str] | None) -> None:
    """Give ``hit`` (an image found built, with no record here) the lock it keeps: ``lines``,
    the first of which is ``# python SERIES`` (the lock's key)."""
    if not lines or hit.lock or not lines[0].startswith("# python "):
        return
    python = lines[0].split()[-1]
    hit.lock = render_lock(one_line_requirements(lines[1:]), env_hash=hit.env_hash, python=python,
                           tool="pip")
    hit.lock_python = python
