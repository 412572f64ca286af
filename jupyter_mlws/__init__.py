"""jupyter_mlws: a local-first machine-learning workspace that lives inside Jupyter."""

from __future__ import annotations

__version__ = "0.1.0"

from jupyter_mlws.errors import MlwsError  # noqa: E402
from jupyter_mlws.workspace import Workspace  # noqa: E402

__all__ = ["MlwsError", "Workspace", "__version__"]
