"""The identity of an environment: a canonical form of what goes into its image, and its hash.

Canonical form, version 1 (``CANONICAL_VERSION``). The hash is the SHA-256 of the compact JSON
(``sort_keys=True``, separators ``,`` and ``:``, UTF-8) of this object::

    {"v": 1,
     "base":  {"image": "<image reference as written>"}
            | {"context": [[<posix path>, <sha256 of bytes>], ...], "dockerfile": "<path>"},
     "steps": ["<Dockerfile instruction>", ...],
     "conda": <conda environment mapping without 'name', 'prefix', 'variables'> | null,
     "pip":   ["<normalized requirement>", ...] | null}

Rules:

* Only the base image (or the build context's file contents), the Docker steps and the Python
  packages count. Name, version, description, tags and environment variables never do.
* Mappings are compared by content, not key order; YAML comments and layout vanish in parsing.
* Lists keep their order: re-ordering packages, channels or steps gives another hash.
* A pip requirement is normalized: the project name is lower-cased with runs of ``-_.`` made a
  single ``-``; whitespace is removed from the requirement and collapsed to single spaces in its
  environment marker. Comment lines and blank lines are dropped. Option lines (``--index-url``...)
  keep their text with whitespace collapsed.
* A conda dependency string has its whitespace collapsed; the ``pip:`` list inside it is
  normalized as above.
* A Docker step is one instruction; continuation lines (``\\``) are joined, comments and blank lines
  dropped, surrounding whitespace stripped. Whitespace inside an instruction is kept.
* A build context lists every file not excluded by ``.dockerignore``, by sorted relative path,
  with the SHA-256 of its bytes; where the folder lives does not count.

Changing any of this changes every hash: bump ``CANONICAL_VERSION`` and the golden tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pathspec

CANONICAL_VERSION = 1
IMAGE_REPOSITORY = "mlws/mlws_"

_WS = re.compile(r"\s+")
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)")
_SEP = re.compile(r"[-_.]+")


def normalize_requirement(line: str) -> str | None:
    """Normalize one pip requirement line; ``None`` for blanks and comments."""
    text = line.split(" #", 1)[0].strip() if " #" in line else line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("-"):
        return _WS.sub(" ", text)
    req, sep, marker = text.partition(";")
    req = _WS.sub("", req)
    m = _NAME.match(req)
    if m and "://" not in req[: m.end() + 3]:
        req = _SEP.sub("-", m.group(1)).lower() + req[m.end() :]
    if sep:
        return f"{req}; {_WS.sub(' ', marker.strip())}"
    return req


def normalize_requirements(lines: Iterable[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        norm = normalize_requirement(line)
        if norm is not None:
            out.append(norm)
    return out


def split_docker_steps(steps: str | Iterable[str]) -> list[str]:
    """Split Dockerfile text (or a list of snippets) into normalized instructions."""
    chunks = [steps] if isinstance(steps, str) else list(steps)
    out: list[str] = []
    for chunk in chunks:
        current: list[str] = []
        for raw in chunk.splitlines():
            line = raw.strip()
            if not current and (not line or line.startswith("#")):
                continue
            if current and line.startswith("#"):
                continue  # comments inside a continued instruction
            if line.endswith("\\"):
                current.append(line[:-1].rstrip())
                continue
            current.append(line)
            out.append(" ".join(p for p in current if p))
            current = []
        if current:
            out.append(" ".join(p for p in current if p))
    return out


def canonical_conda(conda: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if conda is None:
        return None
    out: dict[str, Any] = {}
    for key, value in conda.items():
        if key in ("name", "prefix", "variables"):
            continue
        if key == "dependencies":
            deps: list[Any] = []
            for dep in value or []:
                if isinstance(dep, Mapping) and "pip" in dep:
                    deps.append({"pip": normalize_requirements(str(x) for x in dep["pip"] or [])})
                elif isinstance(dep, str):
                    deps.append(_WS.sub(" ", dep.strip()))
                else:
                    deps.append(dep)
            out[key] = deps
        elif key == "channels":
            out[key] = [str(c).strip() for c in value or []]
        else:
            out[key] = value
    return out


def canonical_form(
    *,
    image: str | None,
    context_files: list[tuple[str, str]] | None = None,
    dockerfile_path: str | None = None,
    docker_steps: Iterable[str] = (),
    conda: Mapping[str, Any] | None = None,
    pip: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The documented canonical object (see the module docstring)."""
    base: dict[str, Any]
    if context_files is not None:
        base = {
            "context": [[p, h] for p, h in context_files],
            "dockerfile": dockerfile_path or "Dockerfile",
        }
    else:
        base = {"image": (image or "").strip()}
    return {
        "v": CANONICAL_VERSION,
        "base": base,
        "steps": split_docker_steps(list(docker_steps)),
        "conda": canonical_conda(conda),
        "pip": None if pip is None else normalize_requirements(pip),
    }


def hash_canonical(form: Mapping[str, Any]) -> str:
    blob = json.dumps(form, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def image_name(env_hash: str) -> str:
    """``mlws/mlws_<32 hex>``: the Docker repository an environment's image is built into."""
    return IMAGE_REPOSITORY + env_hash[:32]


# --- build contexts --------------------------------------------------------------------------


def dockerignore_spec(folder: Path) -> pathspec.PathSpec | None:
    ignore = folder / ".dockerignore"
    if not ignore.is_file():
        return None
    lines = []
    for raw in ignore.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        body = line[1:] if neg else line
        body = os.path.normpath(body.lstrip("/")).replace(os.sep, "/")
        # Docker matches patterns from the context root only (unlike .gitignore).
        lines.append(("!" if neg else "") + "/" + body)
    return pathspec.PathSpec.from_lines("gitignore", lines)
