"""Jupyter Server configuration for the browser (galata) tests of jupyter-mlws.

- the usual galata test settings (no token, no XSRF, a temporary root folder);
- the port from $MLWS_UI_PORT (playwright.config.js picks a free one), root allowed;
- the workspace from $MLWS_WORKSPACE (a temporary one when unset), seeded with a model with
  three versions, an environment and data unless it already holds models (the sidebar
  benchmark seeds its own) or $MLWS_SEED is 0.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # type: ignore[name-defined]  # noqa: F821

configure_jupyter_server(c)
c.ServerApp.port = int(os.environ.get("MLWS_UI_PORT", "8888"))
c.ServerApp.allow_root = True
c.ServerApp.ip = "127.0.0.1"
# The answers of the test helpers extension are enough; skip the news and update checks.
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"


def _this_build_first() -> None:
    """Serve the extension built in this checkout (jupyter_mlws/labextension) ahead of any
    installed copy, so the tests run what was just built (extra paths are searched first)."""
    built = Path(__file__).resolve().parents[2] / "jupyter_mlws" / "labextension"
    if not (built / "package.json").is_file():
        return
    link_dir = Path(__file__).resolve().parent / ".labextensions"  # git-ignored
    link = link_dir / "jupyter-mlws"
    link_dir.mkdir(exist_ok=True)
    if not (link.is_symlink() and link.resolve() == built):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(built, target_is_directory=True)
    galata_helpers = c.LabServerApp.extra_labextensions_path
    paths = [galata_helpers] if isinstance(galata_helpers, str) else list(galata_helpers)
    c.LabServerApp.extra_labextensions_path = [str(link_dir), *paths]


_this_build_first()


def _seed() -> Path:
    """Open (create) the workspace of $MLWS_WORKSPACE; seed it when it holds no models."""
    import jupyter_mlws
    from jupyter_mlws import Workspace

    # Which checkout the server runs (PYTHONPATH=$PWD puts a worktree's ahead of the install).
    print(f"jupyter_server_test_config: jupyter_mlws from {jupyter_mlws.__file__}", flush=True)

    ws = Workspace.open()
    try:
        if ws.models.names() or os.environ.get("MLWS_SEED", "1") == "0":
            return ws.path
        files = Path(tempfile.mkdtemp(prefix="mlws-seed-"))
        for i, stage in enumerate(["dev", "staging", "prod"], start=1):
            weights = files / f"iris-{i}.pkl"
            weights.write_bytes(f"iris classifier weights v{i}\n".encode() * (40 * i))
            ws.models.create(
                "iris-classifier",
                weights,
                description="A classifier of iris flowers",
                tags={"stage": stage, "framework": "plain-python"},
            )
        ws.models.create("churn-model", _file(files, "churn.bin", "churn"), tags={"team": "crm"})
        ws.environments.create(
            "iris-train",
            image="mlws/base-python:3.11-bookworm",
            pip_requirements=["scikit-learn", "papermill"],
            description="Python with scikit-learn",
            tags={"example": "ui-tests"},
        )
        table = files / "iris.csv"
        table.write_text("sepal_length,sepal_width,species\n5.1,3.5,setosa\n6.2,2.9,virginica\n")
        ws.data.create("iris-table", table, type="uri_file", tags={"source": "ui-tests"})
        shutil.rmtree(files, ignore_errors=True)  # copied into the workspace
        return ws.path
    finally:
        ws.close()


def _file(folder: Path, name: str, text: str) -> Path:
    out = folder / name
    out.write_text(text * 100)
    return out


os.environ.setdefault("MLWS_WORKSPACE", tempfile.mkdtemp(prefix="mlws-ui-ws-"))
try:
    c.MlwsServerConfig.workspace_path = str(_seed())
except Exception as exc:  # traitlets would only warn about a failing config file: stop instead
    raise SystemExit(f"jupyter_server_test_config.py: cannot seed the workspace: {exc!r}") from exc
