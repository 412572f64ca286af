"""Locks: the fully resolved package set of an environment hash, kept so rebuilds install it again.

A lock is a pip requirements file (``pip install --require-hashes`` format): one
``name==version --hash=sha256:...`` line per package pip installed at the first build, read from
``pip install --report`` (the hash of each file the index served; a package the index gave no hash
for is pinned without one, and then the lock installs without ``--require-hashes``). Comment lines
at the top say which hash, Python and tool it came from.

The first build of a hash (per Python series) records the lock; every later build of that hash -
after a prune, on another machine, from a registry - installs exactly the lock with ``--no-deps``
(nothing re-resolved). ``mlws env lock NAME --update`` re-resolves on purpose, as a new version.

The same script makes the lock lines on the host (venv builder) and inside an image build
(:data:`REPORT_SCRIPT`, run by the image's Python, 3.9-compatible).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from jupyter_mlws.errors import LockInstallError

__all__ = [
    "LOCK_BEGIN",
    "LOCK_END",
    "REPORT_SCRIPT",
    "Lock",
    "lock_failure",
    "lock_lines_from_report",
    "lock_meta_key",
    "parse_lock",
    "render_lock",
]

#: The Docker pip step prints the lock lines between these (the builder reads them from the log).
LOCK_BEGIN = "--- mlws lock (pip --require-hashes) ---"
LOCK_END = "--- end of mlws lock ---"


def lock_lines_from_report(report: dict) -> list:  # type: ignore[type-arg, unused-ignore]
    """``name==version [--hash=sha256:X]`` per package in a ``pip install --report`` document."""
    out = []
    for item in report.get("install") or []:
        meta = item.get("metadata") or {}
        name, version = meta.get("name"), meta.get("version")
        if not name or not version:
            continue
        info = item.get("download_info") or {}
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        line = str(name).lower().replace("_", "-") + "==" + str(version)
        if hashes.get("sha256"):
            line += " --hash=sha256:" + hashes["sha256"]
        out.append(line)
    return sorted(out)


#: ``python -c REPORT_SCRIPT report.json`` prints the lock lines of a report (inside images).
REPORT_SCRIPT = (
    "import json, sys\n"
    + "def lock_lines_from_report(report):\n"
    + "\n".join(
        line for line in __import__("inspect").getsource(lock_lines_from_report).splitlines()[2:]
        if not line.lstrip().startswith('"""')
    )
    + "\nprint('\\n'.join(lock_lines_from_report(json.load(open(sys.argv[1])))))\n"
)


@dataclass
class Lock:
    """A parsed lock: its requirement lines and what the header says."""

    text: str
    requirements: list[str]
    python: str | None = None

    @property
    def require_hashes(self) -> bool:
        """Every line carries a hash (so pip can check them all)."""
        return bool(self.requirements) and all("--hash=" in r for r in self.requirements)

    def pins(self) -> dict[str, str]:
        """``{name: version}`` of every pinned line."""
        out = {}
        for req in self.requirements:
            m = re.match(r"([A-Za-z0-9][A-Za-z0-9._\-]*)==(\S+)", req)
            if m:
                out[m.group(1).lower()] = m.group(2)
        return out


def render_lock(lines: list[str], *, env_hash: str, python: str | None, tool: str) -> str:
    """The text of a lock (header comments, then the sorted requirement lines)."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = [
        f"# mlws lock of environment hash {env_hash}",
        f"# python {python or 'unknown'}; resolved {when} by {tool}",
        "# install: pip install --no-deps --require-hashes -r THIS_FILE",
    ]
    return "\n".join(head + sorted(set(lines))) + "\n"


def parse_lock(text: str) -> Lock:
    """The requirement lines of a lock (comments and blanks dropped)."""
    python = None
    m = re.search(r"^# python (\S+);", text, re.M)
    if m and m.group(1) != "unknown":
        python = m.group(1)
    reqs = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return Lock(text=text, requirements=reqs, python=python)


def lock_lines_from_log(text: str) -> list[str] | None:
    """The lock lines an image build printed between :data:`LOCK_BEGIN` and :data:`LOCK_END`,
    or ``None`` (the step was cached, or the image's pip has no ``--report``)."""
    lines = [ln.strip() for ln in text.splitlines()]
    try:
        start = lines.index(LOCK_BEGIN)
        end = lines.index(LOCK_END, start)
    except ValueError:
        return None
    return one_line_requirements([ln for ln in lines[start + 1 : end] if ln])


def one_line_requirements(lines: list[str]) -> list[str]:
    """Requirement lines with continuations (``\\``) joined and comments dropped, so uv's
    ``pip compile`` format and pip's one-line format read alike."""
    joined = re.sub(r"\\\s*\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(" ".join(line.split()))
    return sorted(out)


def lock_meta_key(env_hash: str, python: str) -> str:
    """The store's meta key of the lock of ``env_hash`` for the Python series ``python`` (keys
    hold 64 characters: 40 hex digits of the hash name it; the value holds the whole hash)."""
    return f"envlock:{env_hash[:40]}:{python[:12]}"


def lock_index_key(env_hash: str) -> str:
    """The store's meta key listing the Python series ``env_hash`` has locks for."""
    return f"envlocks:{env_hash[:40]}"


def lock_record(text: str, *, builder: str, env_hash: str, python: str) -> str:
    """The JSON the store keeps for a lock."""
    return json.dumps({"lock": text, "builder": builder, "env_hash": env_hash, "python": python,
                       "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


_NO_MATCH = re.compile(
    r"(?:No matching distribution found for|Could not find a version that satisfies the "
    r"requirement|Because there is no version of|not found in the package registry)\s+"
    r"([A-Za-z0-9][A-Za-z0-9._\-]*)(?:==|\s|$)"
)
_HASH_MISMATCH = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._\-]*)==\S+ from ", re.M)


def lock_failure(log_text: str, lock: Lock, environment: str) -> LockInstallError | None:
    """The clear error for a lock that no longer installs (a yanked/missing pinned version or a
    changed file), naming the package; ``None`` when the log shows neither."""
    pins = lock.pins()
    m = _NO_MATCH.search(log_text)
    if m is not None:
        name = m.group(1).lower()
        pinned = pins.get(name, "?")
        return LockInstallError(
            f"The lock of {environment} pins {name}=={pinned}, which the package index no "
            "longer offers (yanked or removed); the existing image/venv stays in use.",
            package=name, version=pinned,
            hint=f"Re-resolve on purpose with `mlws env lock {environment} --update {name}` "
            "(a new environment version), or restore the release on your index.",
        )
    if "THESE PACKAGES DO NOT MATCH THE HASHES" in log_text:
        hm = _HASH_MISMATCH.search(log_text.split("THESE PACKAGES DO NOT MATCH THE HASHES")[1])
        name = hm.group(1).lower() if hm else "?"
        return LockInstallError(
            f"The package index now serves a different file for {name}=={pins.get(name, '?')} "
            f"than when {environment} was locked; the existing image/venv stays in use.",
            package=name, version=pins.get(name, "?"),
            hint=f"Check your index; or re-resolve: `mlws env lock {environment} --update {name}`.",
        )
    return None
