"""Curated environments shipped with the package, under the reserved ``MLWS-`` prefix."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


def catalog_files() -> list[Path]:
    return sorted(HERE.glob("*.yaml"))


def catalog() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in catalog_files()]


def catalog_digest() -> str:
    h = hashlib.sha256()
    for p in catalog_files():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()
