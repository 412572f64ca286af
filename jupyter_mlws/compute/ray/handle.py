"""One Ray job followed from the runner: status, log copy, stop."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from jupyter_mlws.compute.base import STOP_GRACE_S
from jupyter_mlws.compute.ray.client import HTTP_TIMEOUT_S, RayJobsClient
from jupyter_mlws.errors import MlwsError
from jupyter_mlws.jobs.safe_files import open_log_for_append

PENDING_POLL_S = 0.1  # submit -> Running is what a user waits for
STATUS_POLL_S = 0.25
LOG_POLL_S = 0.5
LOG_BYTES_PER_POLL_S = 2_000_000  # a big log is fetched less often (the endpoint sends it whole)
LOST_CONTACT_S = 60.0
STOP_WAIT_S = 30.0
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class RayJobHandle:
    """One Ray job: a thread follows its status and copies its log into the job's log."""

    def __init__(self, client: RayJobsClient, submission_id: str, log_path: Path) -> None:
        self.client = client
        self.submission_id = submission_id
        self.started_at = time.time()
        self.status = "PENDING"
        self.info: dict[str, Any] = {}
        self.lost: str | None = None
        self.abandoned: str | None = None
        self._log_path = log_path
        self._written = 0
        self._exit: int | None = None
        self._stop_at: float | None = None
        self._done = threading.Event()
        self._closing = threading.Event()
        #: Set once the job is recorded Running: the job's output is copied from then on (or
        #: when it has ended), so no line appears while the job still looks Preparing.
        self.output_open = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._follow, daemon=True,
                                        name=f"ray-job-{submission_id}")
        self._thread.start()

    # the follower thread
    def _follow(self) -> None:
        last_ok = time.monotonic()
        log_size = 0
        next_logs = 0.0
        try:
            while not self._closing.is_set():
                now = time.monotonic()
                try:
                    info = self.client.info(self.submission_id)
                    if now >= next_logs and self.output_open.is_set():
                        log_size = self._copy_logs()
                        next_logs = now + max(LOG_POLL_S, log_size / LOG_BYTES_PER_POLL_S)
                    last_ok = now
                except MlwsError as exc:
                    if now - last_ok > LOST_CONTACT_S:
                        self.lost = str(exc)
                        self._note(f"lost contact with the Ray head: {exc}")
                        self._exit = 1
                        return
                    self._closing.wait(1.0)
                    continue
                if info is None:
                    self.lost = f"the Ray job {self.submission_id} no longer exists"
                    self._exit = 1
                    return
                self._update(info)
                if self.status in TERMINAL:
                    with contextlib.suppress(MlwsError):
                        self._copy_logs()  # what was written as it ended
                    self._exit = exit_code(info)
                    return
                if self._stop_at is not None and now - self._stop_at > STOP_WAIT_S:
                    self._note(f"the Ray job did not stop within {STOP_WAIT_S:.0f} s of the "
                               "request; giving up on it")
                    self.status = "STOPPED"
                    self._exit = -signal.SIGTERM
                    return
                self._closing.wait(PENDING_POLL_S if self.status == "PENDING"
                                   else STATUS_POLL_S)
        except Exception as exc:  # the job must end for the runner, never hang it
            self.lost = f"following the Ray job failed: {type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                self._note(self.lost)
            self._exit = 1
        finally:
            self._done.set()
            with self._changed:
                self._changed.notify_all()

    def _update(self, info: dict[str, Any]) -> None:
        with self._changed:
            self.info = info
            self.status = str(info.get("status") or "PENDING")
            self._changed.notify_all()

    def _copy_logs(self) -> int:
        text = self.client.logs(self.submission_id)
        if len(text) > self._written:
            with open_log_for_append(self._log_path) as f:  # a link put there is refused
                f.write(text[self._written:].encode("utf-8", errors="replace"))
            self._written = len(text)
        return len(text)

    def _note(self, line: str) -> None:
        with open_log_for_append(self._log_path) as f:
            f.write(f"\n[mlws] {line}\n".encode())

    def wait_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def node_ip(self) -> str | None:
        address = self.info.get("driver_agent_http_address")
        return urllib.parse.urlsplit(address).hostname if address else None

    # the Handle protocol
    def poll(self) -> int | None:
        return self._exit if self._done.is_set() else None

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        if self._done.is_set():
            return
        if self._stop_at is None:
            self._stop_at = time.monotonic()
            try:
                self.client.stop(self.submission_id)
            except MlwsError as exc:
                self._note(f"could not ask Ray to stop the job: {exc}")
        self._done.wait(grace + 5.0)

    def abandon(self, note: str) -> None:
        """Stop following a job Ray cannot stop yet (a stop request waits for it to start)."""
        self._note(note)
        self.abandoned = note
        self.status = "STOPPED"
        self._exit = -signal.SIGTERM
        self._closing.set()
        self._done.wait(HTTP_TIMEOUT_S + 1)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=10)


def exit_code(info: dict[str, Any]) -> int:
    status = info.get("status")
    if status == "SUCCEEDED":
        return 0
    if status == "STOPPED":
        return -signal.SIGTERM
    code = info.get("driver_exit_code")
    return int(code) if isinstance(code, int) and code != 0 else 1

