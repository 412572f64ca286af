"""Long operations the API starts without waiting, one background thread each, whose progress
(the log, then the outcome) a client follows with a ``GET``: deployments created with
``POST ...?wait=false`` (``GET /endpoints/{e}/deployments/{d}/operation``) and environment
rebuilds (``GET /environments/{name}/versions/{version}/rebuild``), as environment builds are
followed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from jupyter_mlws.errors import ConflictError, MlwsError, NotFoundError

#: Where the deployment tracker lives in the web application's settings.
SETTINGS_KEY = "mlws_deployment_runs"
#: The most log lines an operation keeps (the oldest are dropped first).
MAX_LINES = 2000

Work = Callable[[Callable[[str], None]], dict[str, Any]]


@dataclass
class Operation:
    """One operation: ``running`` → ``succeeded`` (with what the work returned) or ``failed``
    (with the typed error's JSON body). ``labels`` are the fields that name it in its view."""

    labels: dict[str, Any]
    status: str = "running"
    lines: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime | None = None

    def log(self, line: str) -> None:
        self.lines.append(str(line).rstrip("\n"))
        if len(self.lines) > MAX_LINES:
            del self.lines[: len(self.lines) - MAX_LINES]

    def view(self) -> dict[str, Any]:
        """The wire model: the labels, then status, log, result, error and the times."""
        return {**self.labels, "status": self.status, "log": "\n".join(list(self.lines)),
                "result": self.result, "error": self.error,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}

    def run(self, work: Work) -> None:
        """Do ``work(log)`` and record how it ended (the body of the operation's thread)."""
        status = "failed"
        try:
            self.result = work(self.log)
            status = "succeeded"
        except MlwsError as exc:
            self.error = exc.to_dict()
        except BaseException as exc:  # recorded for the GET; the thread ends here
            self.error = {"error": "internal_error",
                          "message": f"Unexpected error: {type(exc).__name__}: {exc}",
                          "hint": "This is a bug in jupyter_mlws; report it with the log."}
        self.finished_at = datetime.now(timezone.utc)
        self.status = status


class Operations:
    """The operations this server started, by key; a second one of a key still running is
    refused with ``busy()``."""

    def __init__(self) -> None:
        self._runs: dict[Hashable, Operation] = {}
        self._lock = threading.Lock()

    def find(self, key: Hashable) -> Operation | None:
        return self._runs.get(key)

    def start(self, key: Hashable, labels: dict[str, Any], work: Work,
              busy: Callable[[], MlwsError], name: str) -> Operation:
        """Run ``work(log)`` in a thread named ``name``."""
        with self._lock:
            current = self._runs.get(key)
            if current is not None and current.status == "running":
                raise busy()
            op = self._runs[key] = Operation(labels)
        threading.Thread(target=op.run, args=(work,), daemon=True, name=name).start()
        return op


class DeploymentRuns(Operations):
    """Deployment creations (``wait=false``); a second one of a deployment still being created
    is refused (409)."""

    def get(self, endpoint: str, deployment: str) -> Operation:
        run = self.find((endpoint, deployment))
        if run is None:
            raise NotFoundError(
                f"This server started no creation of deployment {deployment!r} of endpoint "
                f"{endpoint!r}.", hint="Create it with POST .../deployments?wait=false, or "
                "look at the deployment itself (GET .../deployments/NAME).")
        return run

    def start_creation(self, endpoint: str, deployment: str, create: Work) -> Operation:
        """Run ``create(log)`` in a thread; its return value is the deployment's view."""
        return self.start(
            (endpoint, deployment), {"endpoint": endpoint, "deployment": deployment}, create,
            lambda: ConflictError(
                f"The deployment {deployment!r} of endpoint {endpoint!r} is being created "
                "already.", hint="Follow it with GET .../operation, then try again."),
            name=f"mlws-deploy-{endpoint}-{deployment}")


_T = TypeVar("_T", bound=Operations)


def tracker(settings: dict[str, Any], key: str, kind: type[_T]) -> _T:
    """The server's ``kind`` tracker kept in its settings under ``key`` (made on first use)."""
    runs = settings.get(key)
    if runs is None:
        runs = settings.setdefault(key, kind())
    assert isinstance(runs, kind)
    return runs


def runs_of(settings: dict[str, Any]) -> DeploymentRuns:
    """The server's tracker of deployment creations."""
    return tracker(settings, SETTINGS_KEY, DeploymentRuns)
