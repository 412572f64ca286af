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
