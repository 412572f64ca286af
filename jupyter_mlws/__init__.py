"""jupyter_mlws: a local-first machine-learning workspace that lives inside Jupyter.

Importing the package is cheap and needs only the standard library, so that code inside a job
(in any environment, on any compute) can ``from jupyter_mlws import run``. ``Workspace`` and
``MlwsError`` load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from jupyter_mlws.errors import MlwsError
    from jupyter_mlws.workspace import Workspace

__all__ = ["MlwsError", "Workspace", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from jupyter_mlws.workspace import Workspace

        return Workspace
    if name == "MlwsError":
        from jupyter_mlws.errors import MlwsError

        return MlwsError
    raise AttributeError(f"module 'jupyter_mlws' has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter Server extension: REST routes under ``/mlws/api/``."""
    return [{"module": "jupyter_mlws.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab sidebar shipped inside the package."""
    return [{"src": "labextension", "dest": "jupyter-mlws"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_mlws``: the magics %%environment, %submit, %register, %mlws."""
    from jupyter_mlws.magics import load_ipython_extension as load

    load(ipython)
