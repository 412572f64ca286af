"""Deployments created through the API without waiting (``POST ...?wait=false``): one background
thread each, whose progress (the environment build's log, then the outcome) a client follows with
``GET /endpoints/{e}/deployments/{d}/operation``, as environment builds are followed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from jupyter_mlws.errors import ConflictError, MlwsError, NotFoundError

#: Where the tracker lives in the web application's settings.
SETTINGS_KEY = "mlws_deployment_runs"
#: The most log lines an operation keeps (the build's beginning is dropped first).
MAX_LINES = 2000


@dataclass
class DeploymentRun:
    """One creation: ``running`` → ``succeeded`` (with the deployment's view) or ``failed``
    (with the typed error's JSON body)."""

    endpoint: str
    deployment: str
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
        """The ``DeploymentOperation`` wire model."""
        return {"endpoint": self.endpoint, "deployment": self.deployment,
                "status": self.status, "log": "\n".join(list(self.lines)),
                "result": self.result, "error": self.error,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}


class DeploymentRuns:
    """The creations this server started; a second one of a deployment still being created is
    refused (409)."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str], DeploymentRun] = {}
        self._lock = threading.Lock()

    def get(self, endpoint: str, deployment: str) -> DeploymentRun:
        run = self._runs.get((endpoint, deployment))
        if run is None:
            raise NotFoundError(
                f"This server started no creation of deployment {deployment!r} of endpoint "
                f"{endpoint!r}.", hint="Create it with POST .../deployments?wait=false, or "
                "look at the deployment itself (GET .../deployments/NAME).")
        return run

    def start(self, endpoint: str, deployment: str,
              create: Callable[[Callable[[str], None]], dict[str, Any]]) -> DeploymentRun:
        """Run ``create(log)`` in a thread; its return value is the deployment's view."""
        with self._lock:
            current = self._runs.get((endpoint, deployment))
            if current is not None and current.status == "running":
                raise ConflictError(
                    f"The deployment {deployment!r} of endpoint {endpoint!r} is being created "
                    "already.", hint="Follow it with GET .../operation, then try again.")
            run = DeploymentRun(endpoint, deployment)
            self._runs[(endpoint, deployment)] = run
        threading.Thread(target=self._run, args=(run, create), daemon=True,
                         name=f"mlws-deploy-{endpoint}-{deployment}").start()
        return run

    @staticmethod
    def _run(run: DeploymentRun,
             create: Callable[[Callable[[str], None]], dict[str, Any]]) -> None:
        status = "failed"
        try:
            run.result = create(run.log)
            status = "succeeded"
        except MlwsError as exc:
            run.error = exc.to_dict()
        except BaseException as exc:  # recorded for GET .../operation; the thread ends here
            run.error = {"error": "internal_error",
                         "message": f"Unexpected error: {type(exc).__name__}: {exc}"}
        run.finished_at = datetime.now(timezone.utc)
        run.status = status

def runs_of(settings: dict[str, Any]) -> DeploymentRuns:
    """The server's tracker (made on first use)."""
    runs = settings.get(SETTINGS_KEY)
    if runs is None:
        runs = settings.setdefault(SETTINGS_KEY, DeploymentRuns())
    assert isinstance(runs, DeploymentRuns)
    return runs
