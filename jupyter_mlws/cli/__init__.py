"""The ``mlws`` command. It holds no logic: it parses, calls the Workspace, and prints.

Readable tables by default, ``-o json`` for scripts. Errors print one line to stderr and exit 1.
One module per command group: :mod:`.workspace`, :mod:`.env` (environments and base images),
:mod:`.assets` (models, data, components, computes), :mod:`.datastore`, :mod:`.job`,
:mod:`.registry`; :mod:`._format` holds the tables and sizes shared with the magics.

The click command tree is in :mod:`._app` (``main``, ``run``), loaded on first use: the
``mlws`` script starts in :mod:`.entry`, which hands ``mlws job notebook`` to a running job
agent with the standard library alone and loads click only for everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_mlws.cli._app import main, run
    from jupyter_mlws.cli._format import emit, print_table


def __getattr__(name: str) -> Any:
    """``main`` and ``run`` (:mod:`._app`), ``emit`` and ``print_table`` (:mod:`._format`),
    imported when first asked for."""
    if name in ("main", "run", "COMMANDS", "LazyGroup"):
        from jupyter_mlws.cli import _app

        return getattr(_app, name)
    if name in ("emit", "print_table"):
        from jupyter_mlws.cli import _format

        return getattr(_format, name)
    raise AttributeError(name)


__all__ = ["emit", "main", "print_table", "run"]
