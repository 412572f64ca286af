"""Who a job's process is, so that a process is killed only while it is still the job's.

A PID alone is not an identity: after a restart (or enough time) the number names another
process. When a job's process starts, its runner records the PID, the process's start time
(``/proc/<pid>/stat`` field 22, in clock ticks since boot) and a random token given to the
process in its environment (``MLWS_JOB_TOKEN``). A process is the job's only if its start time
and the token in ``/proc/<pid>/environ`` both still match.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import NamedTuple

TOKEN_VAR = "MLWS_JOB_TOKEN"


def new_token() -> str:
    """A per-job token to put in its process's environment."""
    import secrets

    return secrets.token_hex(16)


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot), or ``None`` if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces or ')'
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return int(fields[19])  # field 22 overall: fields 3.. start at index 0
    except (IndexError, ValueError):
        return None


def process_group(pid: int) -> int | None:
    """The process group of ``pid`` (field 5 of its stat), or ``None`` if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
        return int(data[data.rfind(b")") + 2:].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def has_token(pid: int, token: str) -> bool:
    """Whether process ``pid`` was started with ``MLWS_JOB_TOKEN=token`` in its environment."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{TOKEN_VAR}={token}".encode() in env.split(b"\0")


class ProcessIdentity(NamedTuple):
    """What the runner recorded about the job's process when it started it."""

    pid: int
    start_time: int | None
    token: str

    @classmethod
    def of(cls, pid: int, token: str) -> ProcessIdentity:
        return cls(pid, start_time(pid), token)

    def write(self, path: Path) -> None:
        from jupyter_mlws.fileio import write_json_atomic

        write_json_atomic(path, {"pid": self.pid, "start_time": self.start_time,
                                 "token": self.token}, mode=0o644)

    @classmethod
    def read(cls, path: Path) -> ProcessIdentity | None:
        """The identity in ``path``; ``None`` when missing or unreadable, and for a bare PID
        (written by an older version): a PID without proof is never killed."""
        from jupyter_mlws.jobs.safe_files import read_job_json

        data = read_job_json(path)
        try:
            return cls(int(data["pid"]), data.get("start_time"), str(data["token"]))
        except (KeyError, TypeError, ValueError):
            return None

    def is_alive_leader(self) -> bool:
        """Whether the process ``pid`` is still the one that was started (time and token)."""
        now = start_time(self.pid)
        return (now is not None and self.start_time is not None and now == self.start_time
                and has_token(self.pid, self.token))

    def members(self) -> list[int]:
        """Live processes of the job's process group that carry the job's token."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and process_group(int(entry)) == self.pid \
                    and has_token(int(entry), self.token):
                out.append(int(entry))
        return out


def kill_recorded_group(pid_file: Path) -> list[int]:
    """SIGKILL the job's process group recorded in ``pid_file``, only where it is still the
    job's; returns the PIDs signalled.

    The group is killed as a whole while its leader is verified. If the leader is gone (or a
    zombie, whose environment cannot be read) but members are left (a kernel whose parent
    died), only the members carrying the job's token are killed.
    """
    ident = ProcessIdentity.read(pid_file)
    if ident is None:
        return []
    if ident.is_alive_leader():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ident.pid, signal.SIGKILL)
        return [ident.pid]
    now = start_time(ident.pid)
    if now is not None and now != ident.start_time:
        return []  # the PID names another process now: its group is not the job's
    killed = []
    for pid in ident.members():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed
