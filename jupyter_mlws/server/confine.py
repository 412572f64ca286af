"""What a REST caller may name: paths under the server's root, registered assets, job outputs and
datastores. Nothing else on the host (``/etc/shadow``, ``~/.ssh``, ``../x``, a link out of the
root) reaches a job; a NUL byte or an unusable path is a 400, never a 500.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from jupyter_mlws.assets.base import looks_like_ref
from jupyter_mlws.errors import NotFoundError, UnsafePathError

#: URIs a caller may give as an input: job outputs and datastore paths, in the exact forms the
#: job submission reads as such (any other ``mlws://`` text would be read as a local path), with
#: no ``..`` part (the job and datastore must also exist, which the submission checks).
_ALLOWED_URI = re.compile(r"^(?:mlws|azureml)://(?:jobs/[^/]+/outputs|datastores/[^/]+/paths)/"
                          r"(?!(?:.*/)?\.\.(?:/|$))")
_PATH_MAX = 4096
_NAME_MAX = 255
_ALLOWED = ("registered data or model references (azureml:NAME:VERSION), job outputs "
            "(mlws://jobs/<id>/outputs/<name>), datastore paths "
            "(mlws://datastores/<name>/paths/<path>) and paths under the server's root folder")


def check_text(text: str, what: str) -> None:
    """Refuse a NUL byte (no path can hold one)."""
    if "\x00" in text:
        raise UnsafePathError(f"The {what} {text!r} contains a NUL byte.",
                              hint="Remove it: no file name can hold one.")


def resolve_under_root(root: Path, rel: str, what: str) -> Path:
    """``rel`` (as Jupyter's file browser shows it) inside ``root``; refuses a way out."""
    check_text(rel, f"{what} path")
    text = rel.replace("\\", "/").lstrip("/")
    if not text or PureWindowsPath(rel).drive:
        raise UnsafePathError(f"The {what} path {rel!r} is not a path relative to the server's "
                              "root folder.", hint="Give it as the file browser shows it, "
                              "e.g. 'folder/notebook.ipynb'.")
    parts = PurePosixPath(text).parts
    if len(text.encode()) > _PATH_MAX or any(len(p.encode()) > _NAME_MAX for p in parts):
        raise UnsafePathError(f"The {what} path ({len(text)} characters) is too long for a file "
                              "name.", hint=f"Paths are at most {_PATH_MAX} bytes, each name at "
                              f"most {_NAME_MAX}.")
    if ".." in parts:
        raise UnsafePathError(f"The {what} path {rel!r} climbs out with '..'.",
                              hint="Give a path inside the server's root folder.")
    try:
        resolved = (root / text).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # too long, a link loop...
        raise UnsafePathError(f"The {what} path {rel[:200]!r} cannot be used: {exc}.",
                              hint="Give an existing path inside the server's root folder."
                              ) from None
    if not resolved.is_relative_to(root):
        raise UnsafePathError(f"The {what} path {rel!r} leads outside the server's root folder "
                              "(through a symbolic link).",
                              hint="Copy the file into the root folder instead of linking it.")
    return resolved


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _looks_like_path(text: str) -> bool:
    return ("/" in text or "\\" in text or text.startswith(("~", "."))
            or bool(PureWindowsPath(text).drive))


def confine_input_value(root: Path, name: str, value: Any) -> Any:
    """One input as the job submission may take it from a REST caller.

    A reference or allowed URI passes; a path must lie under ``root`` (given relative to it) and
    is passed as the absolute path; a bare word that is no file there is a string value.
    """
    if isinstance(value, Mapping):
        return _confine_input_spec(root, name, value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if not isinstance(value, str):
        raise UnsafePathError(f"The input {name!r} is a {type(value).__name__}.",
                              hint=f"An input is a scalar, or one of: {_ALLOWED}.")
    check_text(value, f"input {name!r}")
    if looks_like_ref(value) or _ALLOWED_URI.match(value):
        return value
    if "://" in value or value.startswith("file:"):
        raise UnsafePathError(f"The input {name!r} names {value!r}, which the server does not "
                              "let a caller reach.", hint=f"Allowed are {_ALLOWED}.")
    if os.path.isabs(value) or value.startswith("~"):
        raise UnsafePathError(f"The input {name!r} names the host path {value!r}; a REST caller "
                              "may only name paths under the server's root folder.",
                              hint="Give it relative to the root folder (as the file browser "
                              "shows it), or register it as data first.")
    if _looks_like_path(value) or _exists(root / value):
        return _confined_path(root, name, value)
    return {"type": "string", "value": value}


def _confined_path(root: Path, name: str, value: str) -> dict[str, str]:
    path = resolve_under_root(root, value, f"input {name!r}")
    if not _exists(path):
        raise NotFoundError(f"The input {name!r} names {value!r}, which is not in the server's "
                            "root folder.", hint="Give a path as the file browser shows it.")
    return {"type": "uri_file" if path.is_file() else "uri_folder", "path": str(path)}


def _confine_input_spec(root: Path, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    for key in ("path", "value"):
        raw = spec.get(key)
        if raw is None:
            continue
        if key == "value" and not isinstance(raw, str):
            continue
        if not isinstance(raw, str):
            raise UnsafePathError(f"The {key} of input {name!r} is not text.",
                                  hint=f"Give one of: {_ALLOWED}.")
        check_text(raw, f"input {name!r}")
        confined = confine_input_value(root, name, raw)
        if isinstance(confined, dict) and "path" in confined:
            out[key] = confined["path"]
        elif key == "path" and isinstance(confined, dict):  # a bare word given as a path
            out[key] = _confined_path(root, name, raw)["path"]
        elif key == "value" and isinstance(confined, dict):  # a string: keep it a string
            out[key] = raw
            out.setdefault("type", "string")
        else:
            out[key] = confined
    return out


def confine_inputs(root: Path, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Every input of a REST submission through :func:`confine_input_value`."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        check_text(name, "input name")
        out[name] = confine_input_value(root, name, value)
    return out


__all__ = ["check_text", "confine_input_value", "confine_inputs", "resolve_under_root"]
