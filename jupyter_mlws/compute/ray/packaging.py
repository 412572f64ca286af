"""The ``jupyter_mlws`` package on the nodes (a content-addressed zip), and the paths every
node sees."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

PACKAGE_EXCLUDES = frozenset({"__pycache__", "labextension", "node_modules"})


def _package_files(pkg_dir: Path) -> list[tuple[str, Path]]:
    out = []
    for root, dirs, files in os.walk(pkg_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in PACKAGE_EXCLUDES)
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(root) / name
            out.append((f"{pkg_dir.name}/{path.relative_to(pkg_dir).as_posix()}", path))
    return out


def package_zip(pkg_dir: Path) -> tuple[str, bytes]:
    """``(gcs package name, zip bytes)`` of the ``jupyter_mlws`` package, named by content."""
    files = _package_files(pkg_dir)
    digest = hashlib.sha256()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, path in files:
            content = path.read_bytes()
            digest.update(arc.encode() + b"\0" + content + b"\0")
            info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return f"_ray_pkg_{digest.hexdigest()[:32]}.zip", buf.getvalue()


def under(path: str | Path, prefixes: list[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == p or p in real.parents for p in prefixes)

