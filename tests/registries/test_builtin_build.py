"""The built-in ``sklearn-1.5`` environment built for real (a venv on local compute, from the
package index this machine reaches) by an Azure hello-world job that names it by its registry
URI, as Azure's examples do."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import Result

from jupyter_mlws import Workspace
from tests.registries.conftest import SPECS


def test_sklearn_15_is_built_and_runs_an_azure_hello_world(cli: Callable[..., Result],
                                                           ws_a: Workspace) -> None:
    result = cli("job", "create", "-f", str(SPECS / "hello-sklearn-1.5.yml"), "-w",
                 str(ws_a.path), "--wait", "-o", "json")
    job = json.loads(result.stdout)
    log = ws_a.jobs.logs(job["id"])
    assert job["status"] == "Completed", log
    assert "hello world from scikit-learn 1.5.2" in log
    env = ws_a.environments.get(job["environment"])
    built = ws_a.environments.build_record(env, "venv")
    assert built is not None and built["status"] == "succeeded"
    packages = " ".join(built["result"]["resolved_packages"]).lower()
    for pin in ("scikit-learn==1.5.2", "pandas==2.2.3", "mlflow==2.22.1", "papermill==2.7.0"):
        assert pin in packages
    # Azure's own hello world on the same environment: built once, reused
    builds = len(ws_a.environments.build_history(env, "venv"))
    again = cli("job", "create", "-f", str(SPECS / "hello-world-registry-env.yml"), "-w",
                str(ws_a.path), "--wait", "-o", "json")
    hello = json.loads(again.stdout)
    assert hello["status"] == "Completed" and hello["environment"] == job["environment"]
    assert "hello world" in ws_a.jobs.logs(hello["id"])
    assert len(ws_a.environments.build_history(env, "venv")) == builds
