"""Re-resolving a lock on purpose (``mlws env lock NAME --update [PKG...]``).

A lock never changes by itself: the same hash always installs the same set. To move on, the
user asks for an update, which resolves again - everything, or only the named packages with the
others held at their locked versions (a pip constraints file) - and the result becomes a *new
environment version* whose ``pip_requirements`` are the resolved pins (a new hash, so a new
lock, image and venv). The user's own requirement lines are kept in the tag
:data:`TAG_REQUIREMENTS`, so a later update starts from them again, and :data:`TAG_FROM` names
the version it was updated from.

The resolution runs pip's resolver without installing (``pip install --dry-run --report``) on
the given interpreter (this machine's pip configuration decides the index).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_mlws.environments.builds import tail
from jupyter_mlws.environments.locks import Lock, lock_lines_from_report
from jupyter_mlws.errors import BuildError

__all__ = ["TAG_FROM", "TAG_REQUIREMENTS", "resolve", "updated_requirements"]

TAG_REQUIREMENTS = "mlws.lock.requirements"
TAG_FROM = "mlws.lock.updated_from"


def resolve(requirements: list[str], *, constraints: list[str] | None = None,
            python: str | None = None) -> list[str]:
    """``name==version --hash=...`` lines pip resolves for ``requirements`` (nothing installed).

    Raises:
        BuildError: pip could not resolve them (its output's tail says why).
    """
    with tempfile.TemporaryDirectory(prefix="mlws-resolve-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        report = Path(tmp) / "report.json"
        cmd = [python or sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--disable-pip-version-check", "--quiet", "--report", str(report), "-r", str(reqs)]
        if constraints:
            cons = Path(tmp) / "constraints.txt"
            cons.write_text("\n".join(constraints) + "\n", encoding="utf-8")
            cmd += ["-c", str(cons)]
        env = {**os.environ, "PIP_NO_INPUT": "1"}
        env.pop("VIRTUAL_ENV", None)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0 or not report.is_file():
            raise BuildError(
                "Re-resolving the lock failed.", step="pip install --dry-run",
                log_tail=tail(proc.stdout + proc.stderr),
                hint="Check the package names given to --update and the index (pip's error "
                "is above).")
        return list(lock_lines_from_report(json.loads(report.read_text(encoding="utf-8"))))


def updated_requirements(original: list[str], old: Lock | None, packages: list[str],
                         python: str | None = None) -> list[str]:
    """The pins of a deliberate update: ``packages`` move (all when empty), the rest of ``old``
    stays as locked."""
    wanted = {p.lower().replace("_", "-") for p in packages}
    constraints = None
    if old is not None and wanted:
        constraints = [f"{n}=={v}" for n, v in sorted(old.pins().items()) if n not in wanted]
    lines = resolve(original, constraints=constraints, python=python)
    return [ln.split(" ", 1)[0] for ln in lines]


def original_requirements(tags: dict[str, str], current: list[str]) -> list[str]:
    """The user's own requirement lines (kept in a tag by an earlier update), else ``current``."""
    raw = tags.get(TAG_REQUIREMENTS)
    if raw:
        try:
            value = json.loads(raw)
        except ValueError:
            return current
        if isinstance(value, list):
            return [str(x) for x in value]
    return current
