"""A real two-node Ray cluster on this machine (``scripts/ray-cluster.sh``) for the session.

The head listens on a veth address, the worker runs in a network namespace of its own; both see
the same filesystem except their Ray temp folders, so a workspace under pytest's temp folder is
shared storage for both nodes. In CI (``CI`` set) a cluster that cannot start fails the tests;
elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws import Workspace
from tests.helpers import stop_jobs

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ray-cluster.sh"
STATE = Path(os.environ.get("MLWS_RAY_STATE", "/tmp/mlws-ray"))
HEAD_IP = os.environ.get("MLWS_RAY_HEAD_IP", "10.203.0.1")
WORKER_IP = os.environ.get("MLWS_RAY_WORKER_IP", "10.203.0.2")
TOKEN_ENV = "MLWS_TEST_RAY_TOKEN"


@dataclass
class RayCluster:
    address: str
    token: str | None

    def api(self, path: str) -> Any:
        """GET a dashboard endpoint (with the token) and decode its JSON."""
        req = urllib.request.Request(self.address + path)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def job(self, submission_id: str) -> dict[str, Any]:
        return dict(self.api(f"/api/jobs/{submission_id}"))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the Ray cluster tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[RayCluster]:
    """Starts the cluster (unless it is up already) and stops it after this folder's tests (an
    idle cluster takes a share of a CPU that the rest of the suite needs)."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"):
        _unavailable("a two-node Ray cluster here needs root, `ip` and `unshare`")
    was_up = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True,
                            timeout=60).returncode == 0
    proc = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        _unavailable(f"`scripts/ray-cluster.sh up` failed:\n{proc.stderr[-4000:]}")
    address = proc.stdout.strip().splitlines()[-1]
    token_file = STATE / "auth_token"
    token = token_file.read_text().strip() if token_file.exists() else None
    try:
        yield RayCluster(address=address, token=token)
    finally:
        if not was_up:
            subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, timeout=300)


@pytest.fixture
def rws(ws: Workspace, ray_cluster: RayCluster, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace with two Ray computes: ``ray-worker`` (jobs go to the worker node, through
    the custom resource ``worker``) and ``ray`` (Ray places each job on a node with a free CPU).
    Its folder is under ``tmp_path``, which both nodes see: that is the shared path."""
    settings: dict[str, Any] = {"shared_paths": [str(tmp_path)]}
    if ray_cluster.token:
        monkeypatch.setenv(TOKEN_ENV, ray_cluster.token)
        settings["token_env"] = TOKEN_ENV
    ws.computes.create("ray-worker", type="ray", address=ray_cluster.address,
                       max_concurrent_jobs=2, settings={**settings, "resources": {"worker": 1}})
    ws.computes.create("ray", type="ray", address=ray_cluster.address, max_concurrent_jobs=2,
                       settings=settings)
    yield ws
    stop_jobs(ws, timeout=60)


