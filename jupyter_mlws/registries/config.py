"""Which registries a user knows: one file per user, read by every workspace of that user.

``$MLWS_REGISTRIES_FILE`` when set, else ``$XDG_CONFIG_HOME/mlws/registries.yaml`` (by default
``~/.config/mlws/registries.yaml``), beside the secret key. It maps a registry's name to its
location::

    registries:
      team-shared:
        location: /srv/ml/registries/team-shared

A registry is a catalogue shared across workspaces, so it is known per user, not per workspace.
Changes are made under a lock and written atomically (concurrent ``mlws registry create`` calls
never lose each other's lines).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from jupyter_mlws.errors import ValidationError
from jupyter_mlws.fileio import write_text_atomic

ENV_FILE = "MLWS_REGISTRIES_FILE"
_HEADER = ("# Registries known to this user (mlws registry create|delete): every workspace of "
           "the user resolves azureml://registries/<name>/... against them.\n")


def config_file() -> Path:
    """Where the user's list of registries is kept."""
    override = os.environ.get(ENV_FILE)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "mlws" / "registries.yaml"


def read_registries() -> dict[str, dict[str, Any]]:
    """``{name: {"location": ...}}`` from the user's file (empty when there is none)."""
    path = config_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ValidationError(f"Cannot read {str(path)!r}: {exc.strerror}.") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(f"{str(path)!r} is not valid YAML: {exc}".rstrip(".") + ".",
                              hint="Fix or remove the file, then add the registries again "
                              "(`mlws registry create NAME --path DIR`).") from None
    table = data.get("registries") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        return {}
    return {str(k): v for k, v in table.items()
            if isinstance(v, dict) and isinstance(v.get("location"), str)}


@contextlib.contextmanager
def editing() -> Iterator[dict[str, dict[str, Any]]]:
    """The user's registries to change in place; written back atomically on exit, under a lock
    held meanwhile."""
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        table = read_registries()
        before = {k: dict(v) for k, v in table.items()}
        yield table
        if table != before:
            body = yaml.safe_dump({"registries": table}, sort_keys=True)
            write_text_atomic(path, _HEADER + body, mode=0o600)
    finally:
        os.close(fd)
