"""Who is acting: what jobs and asset versions record as ``created_by``.

``$MLWS_USER`` when set (e.g. the name a team knows someone by, the same on all their machines),
else the OS user and the machine, ``user@host``. A listing filtered by a user matches both that
exact value and every ``user@<any host>``; ``ME`` stands for whoever runs the command.
"""

from __future__ import annotations

import getpass
import os
import socket

ENV_USER = "MLWS_USER"
ME = "me"
_MAX = 255  # the store's column


def current_user() -> str | None:
    """``$MLWS_USER``, else ``user@host`` (None when the OS names no user)."""
    given = os.environ.get(ENV_USER, "").strip()
    if given:
        return given[:_MAX]
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry and no USER/LOGNAME (some containers)
        return None
    return f"{user}@{socket.gethostname()}"[:_MAX]


def resolve(created_by: str | None) -> str | None:
    """A ``--created-by`` value as the store matches it: ``ME`` -> :func:`current_user`."""
    if created_by is None:
        return None
    value = created_by.strip()
    if value.lower() == ME:
        return current_user() or ""
    return value
