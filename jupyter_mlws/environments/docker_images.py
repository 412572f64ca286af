"""What an environment image is, without calling the engine: its labels, its build record, the
build context tar, and a :class:`BuildResult` read back from an ``inspect``.

Labels on each image: ``org.mlws.hash``, ``org.mlws.environment`` (``name:version`` that first
built it), ``org.mlws.version`` (package version), ``org.mlws.kind``, ``org.mlws.base-image`` and
``org.mlws.base-id`` (the base's image id, to tell when the base moved).

Next to each build lock, ``<hash>.json`` records what a lookup cannot read from the engine in
milliseconds (the resolved packages, the base digest, the build time), and ``<hash>.builds.jsonl``
lists every build of the hash (:class:`~jupyter_mlws.environments.builds.BuildHistory`).
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_mlws.environments.builds import BuildResult
from jupyter_mlws.environments.dockerfile import FREEZE_BEGIN, FREEZE_END, VENV_PATH
from jupyter_mlws.environments.identity import image_name

LABEL_HASH = "org.mlws.hash"
LABEL_ENVIRONMENT = "org.mlws.environment"
LABEL_VERSION = "org.mlws.version"
LABEL_KIND = "org.mlws.kind"
LABEL_BASE_IMAGE = "org.mlws.base-image"
LABEL_BASE_ID = "org.mlws.base-id"
#: JSON list of what the build did differently from the definition (mapped image, Python used,
#: conda translated): kept on the image, so a workspace that finds it built elsewhere knows.
LABEL_NOTES = "org.mlws.notes"
#: Base images made on this machine by ``mlws image bootstrap``; there is nothing to pull.
LOCAL_BASE_PREFIX = "mlws/base-"
TAG = "latest"

#: Lists the installed packages inside an image: pip freeze (venv first), then conda's list.
FREEZE_SCRIPT = (
    f"if [ -x {VENV_PATH}/bin/python ]; then {VENV_PATH}/bin/python -m pip freeze; "
    "elif command -v python3 >/dev/null 2>&1; then python3 -m pip freeze; "
    "elif command -v python >/dev/null 2>&1; then python -m pip freeze; fi 2>/dev/null; "
    "c=$(command -v micromamba || command -v mamba || command -v conda || true); "
    'if [ -n "$c" ]; then echo "#mlws-conda"; '
    '"$c" list -n base --export 2>/dev/null || "$c" list -n base 2>/dev/null; fi; true'
)
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)


def image_ref(env_hash: str) -> str:
    """``mlws/mlws_<hash>:latest``: the tag of an environment's image."""
    return f"{image_name(env_hash)}:{TAG}"


def package_version() -> str:
    """The installed version of jupyter_mlws (for the ``org.mlws.version`` label)."""
    try:
        from importlib.metadata import version

        return version("jupyter_mlws")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"


def labels_for(
    env_hash: str, environment: str, kind: str, version: str, base: str | None,
    base_id: str | None, notes: list[str] | None = None,
) -> dict[str, str]:
    """The labels an environment image carries."""
    labels = {
        LABEL_HASH: env_hash,
        LABEL_ENVIRONMENT: environment,
        LABEL_VERSION: version,
        LABEL_KIND: kind,
    }
    if base:
        labels[LABEL_BASE_IMAGE] = base
    if base_id:
        labels[LABEL_BASE_ID] = base_id
    if notes:
        labels[LABEL_NOTES] = json.dumps(notes)
    return labels


def freeze_from_log(text: str) -> list[str] | None:
    """The ``pip freeze`` lines the rendered pip step printed, or ``None`` (step was cached)."""
    lines = text.splitlines()
    try:
        start = lines.index(FREEZE_BEGIN)
        end = lines.index(FREEZE_END, start)
    except ValueError:
        return None
    return [ln.strip() for ln in lines[start + 1 : end] if ln.strip() and not ln.startswith("#")]


def parse_freeze(text: str) -> list[str]:
    """The output of :data:`FREEZE_SCRIPT` as package lines (conda ones as ``conda:...``)."""
    packages: list[str] = []
    conda = False
    for line in text.splitlines():
        line = line.strip()
        if line == "#mlws-conda":
            conda = True
            continue
        if not line or line.startswith("#"):
            continue
        packages.append(f"conda:{line}" if conda else line)
    return packages


def tar_context(files: Mapping[str, bytes]) -> io.BytesIO:
    """A build context as an uncompressed tar; identical contexts give identical tars."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def final_base(dockerfile_text: str) -> str | None:
    """The image the last stage of a Dockerfile starts from (``None`` when it uses ``$ARG``)."""
    stages: dict[str, str] = {}
    last: str | None = None
    for line in dockerfile_text.replace("\\\n", " ").splitlines():
        m = _FROM.match(line)
        if not m:
            continue
        ref = m.group(1)
        ref = stages.get(ref.lower(), ref)
        if m.group(2):
            stages[m.group(2).lower()] = ref
        last = ref
    if last is None or "$" in last:
        return None
    return last


class BuildRecords:
    """``<hash>.json`` files in ``folder``: what the last build of each hash found out."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, env_hash: str) -> Path:
        return self.folder / f"{env_hash}.json"

    def read(self, env_hash: str) -> dict[str, Any]:
        """The record of ``env_hash`` (``{}`` when there is none or it is unreadable)."""
        try:
            data = json.loads(self.path(env_hash).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, result: BuildResult, environment: str) -> None:
        """Replace the record of ``result.env_hash`` (atomically)."""
        data = result.to_dict()
        data.pop("log", None)
        data.pop("cached", None)
        data["environment"] = environment
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path(result.env_hash).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path(result.env_hash))

    def result(
        self, env_hash: str, ref: str, info: Mapping[str, Any], kind: str, *, cached: bool
    ) -> BuildResult:
        """The :class:`BuildResult` of the image ``info`` (an inspect), completed from its record."""
        labels = (info.get("Config") or {}).get("Labels") or {}
        record = self.read(env_hash)
        if record.get("image_id") != info["Id"]:
            record = {}
        digests = info.get("RepoDigests") or []
        if kind == "image" and not labels.get(LABEL_BASE_ID) and not record:
            record = {"base_image_id": info["Id"]}  # an adopted image is its own base
        return BuildResult(
            env_hash=env_hash,
            image=ref,
            image_id=str(info["Id"]),
            digest=record.get("digest") or (digests[0] if digests else None),
            size=int(info.get("Size") or 0),
            build_seconds=0.0 if cached else float(record.get("build_seconds", 0.0)),
            cached=cached,
            resolved_packages=list(record.get("resolved_packages", [])),
            base_image=labels.get(LABEL_BASE_IMAGE) or record.get("base_image"),
            base_image_id=labels.get(LABEL_BASE_ID) or record.get("base_image_id"),
            base_digest=record.get("base_digest"),
            kind=labels.get(LABEL_KIND) or record.get("kind") or kind,
            builder="docker",
            built_at=record.get("built_at"),
            replaced_image_id=record.get("replaced_image_id"),
            notes=list(record.get("notes") or _label_notes(labels)),
            lock=record.get("lock"),
            lock_python=record.get("lock_python"),
            from_lock=bool(record.get("from_lock")),
        )


def _label_notes(labels: Mapping[str, str]) -> list[str]:
    try:
        notes = json.loads(labels.get(LABEL_NOTES) or "[]")
    except ValueError:
        return []
    return [str(n) for n in notes] if isinstance(notes, list) else []
