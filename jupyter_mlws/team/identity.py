"""Who is acting: what jobs and asset versions record as ``created_by``.

``$MLWS_USER`` when set (e.g. the name a team knows someone by, the same on all their machines),
else the OS user and the machine, ``user@host``. A listing filtered by a user matches both that
exact value and every ``user@<any host>``; ``ME`` stands for whoever runs the command.
A surface acting for someone else (the REST extension for the Jupyter user who sent the request)
wraps its facade calls in :func:`acting_as`, which takes precedence over both.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Iterator
from contextvars import ContextVar

ENV_USER = "MLWS_USER"
ME = "me"
_MAX = 255  # the store's column
_ACTING: ContextVar[str | None] = ContextVar("mlws_acting_user", default=None)


@contextlib.contextmanager
def acting_as(user: str | None) -> Iterator[None]:
    """Within the block (this thread/task only), :func:`current_user` is ``user``.

    ``None`` or a blank name changes nothing (the process's own identity applies).
    """
    name = (user or "").strip()[:_MAX]
    if not name:
        yield
        return
    token = _ACTING.set(name)
    try:
        yield
    finally:
        _ACTING.reset(token)


def current_user() -> str | None:
    """The :func:`acting_as` user, else ``$MLWS_USER``, else ``user@host`` (None when the OS
    names no user)."""
    acting = _ACTING.get()
    if acting:
        return acting
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
