"""Resumable multipart uploads of blobs to S3.

A blob larger than one part is uploaded with S3's low-level multipart calls. Before the first
part is sent, the upload's state (bucket, key, UploadId, part size, size, sha256; never
credentials) is written atomically into a 0600 JSON file ``<sha256>.json`` in a machine-local
folder. A later upload of the same blob (a retry in a new process after a crash) lists the parts
the server holds for that UploadId, keeps each whose ETag is the MD5 of the same byte range of
the local file, sends only the missing or different ones, and completes the upload; S3 shows the
object only then. An UploadId the server no longer knows starts a fresh upload. A per-blob lock
file keeps two processes of one machine off the same upload.

Stale state (older than :data:`STALE_S`) is aborted and removed when a new upload starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_mlws.fileio import write_json_atomic

ENV_PART_MB = "MLWS_S3_PART_MB"
ENV_FAULT = "MLWS_UPLOAD_TEST_FAULT"
DEFAULT_PART_MB = 16
MIN_PART_MB = 5  # S3's smallest part (but the last)
STALE_S = 86400.0

log = logging.getLogger(__name__)


def part_bytes() -> int:
    """The part size of new uploads: ``$MLWS_S3_PART_MB`` MB (at least 5) or 16 MB."""
    raw = os.environ.get(ENV_PART_MB)
    try:
        mb = int(raw) if raw else DEFAULT_PART_MB
    except ValueError:
        mb = DEFAULT_PART_MB
    return max(MIN_PART_MB, mb) << 20


@dataclass
class UploadStats:
    """What one upload did: the part numbers it sent and those it kept from an earlier try."""

    parts: int = 0
    sent: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    resumed: bool = False


def _fault(where: str) -> None:
    """Tests kill the uploader at ``where`` (``MLWS_UPLOAD_TEST_FAULT``, e.g. ``after-part-1``)."""
    if os.environ.get(ENV_FAULT) == where:
        os.kill(os.getpid(), signal.SIGKILL)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@contextlib.contextmanager
def _locked(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path``; yields whether the lock was free at once (``wait``
    False: yields False without the lock when it is taken)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free = True
        except BlockingIOError:
            if not wait:
                yield False
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            free = False
        yield free
    finally:
        os.close(fd)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _abort(client: Any, state: dict[str, Any]) -> None:
    """Abort a recorded upload, best effort (gone or unreachable is fine)."""
    from botocore.exceptions import BotoCoreError, ClientError

    with contextlib.suppress(BotoCoreError, ClientError, KeyError, TypeError):
        client.abort_multipart_upload(Bucket=state["bucket"], Key=state["key"],
                                      UploadId=state["upload_id"])


def sweep_stale(client: Any, folder: Path, *, now: float | None = None) -> int:
    """Abort and remove the recorded uploads older than :data:`STALE_S` that no process is
    running; how many."""
    now = time.time() if now is None else now
    removed = 0
    for path in folder.glob("*.json"):
        state = _read_state(path)
        started = state.get("started") if state else None
        if isinstance(started, (int, float)) and now - started < STALE_S:
            continue
        with _locked(path.with_suffix(".lock"), wait=False) as free:
            if not free:
                continue
            if state:
                _abort(client, state)
            path.unlink(missing_ok=True)
            path.with_suffix(".lock").unlink(missing_ok=True)
            removed += 1
    return removed


def _listed_parts(client: Any, bucket: str, key: str, upload_id: str) -> dict[int, str] | None:
    """``{part number: ETag}`` the server holds for the upload; None when it is gone."""
    from botocore.exceptions import ClientError

    out: dict[int, str] = {}
    try:
        pages = client.get_paginator("list_parts").paginate(
            Bucket=bucket, Key=key, UploadId=upload_id)
        for page in pages:
            for part in page.get("Parts", []):
                out[int(part["PartNumber"])] = str(part.get("ETag", ""))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404", "NotFound"):
            return None
        raise
    return out


def _resume_or_start(client: Any, want: dict[str, Any], path: Path,
                     stats: UploadStats) -> tuple[str, int, dict[int, str]]:
    """(UploadId, part size, parts held) of the recorded upload of this blob, else a new one
    (recorded before any part is sent)."""
    state = _read_state(path)
    if state is not None:
        same = all(state.get(k) == v for k, v in want.items())
        size = state.get("part_bytes")
        if same and isinstance(size, int) and size >= MIN_PART_MB << 20:
            held = _listed_parts(client, want["bucket"], want["key"], str(state["upload_id"]))
            if held is not None:
                stats.resumed = True
                return str(state["upload_id"]), size, held
        else:
            _abort(client, state)
        path.unlink(missing_ok=True)
    size = part_bytes()
    upload_id = str(client.create_multipart_upload(
        Bucket=want["bucket"], Key=want["key"], Metadata={"sha256": want["sha256"]})["UploadId"])
    write_json_atomic(path, {**want, "upload_id": upload_id, "part_bytes": size,
                             "started": time.time()})
    return upload_id, size, {}


def _stored(client: Any, bucket: str, key: str, size: int) -> bool:
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return int(head.get("ContentLength", -1)) == size


def upload(client: Any, bucket: str, key: str, sha256: str, src: Path, size: int,
           folder: Path | None) -> UploadStats | None:
    """Upload ``src`` to ``key`` in parts, resuming a recorded upload of the same blob. None
    when another process of this machine uploaded it meanwhile (the caller checks the object)."""
    if folder is None:
        return _upload_once(client, bucket, key, sha256, src, size)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    sweep_stale(client, folder)
    path = folder / f"{sha256}.json"
    with _locked(path.with_suffix(".lock")) as free:
        if not free and _stored(client, bucket, key, size):
            return None  # another process of this machine uploaded it meanwhile
        want = {"bucket": bucket, "key": key, "sha256": sha256, "size": size}
        stats = UploadStats()
        upload_id, psize, held = _resume_or_start(client, want, path, stats)
        _send(client, want, upload_id, psize, held, src, stats)
        path.unlink(missing_ok=True)
        path.with_suffix(".lock").unlink(missing_ok=True)  # (a waiter then finds it stored)
    if stats.resumed:
        log.info("resumed the upload of blob %s: sent parts %s, kept %s of %d", sha256[:12],
                 stats.sent, stats.kept, stats.parts)
    return stats


def _upload_once(client: Any, bucket: str, key: str, sha256: str, src: Path,
                 size: int) -> UploadStats:
    """A multipart upload without recorded state (aborted when it fails)."""
    want = {"bucket": bucket, "key": key, "sha256": sha256, "size": size}
    psize = part_bytes()
    upload_id = str(client.create_multipart_upload(
        Bucket=bucket, Key=key, Metadata={"sha256": sha256})["UploadId"])
    stats = UploadStats()
    try:
        _send(client, want, upload_id, psize, {}, src, stats)
    except BaseException:
        _abort(client, {**want, "upload_id": upload_id})
        raise
    return stats


def _send(client: Any, want: dict[str, Any], upload_id: str, psize: int,
          held: dict[int, str], src: Path, stats: UploadStats) -> None:
    """Send the parts not held with the same bytes, then complete the upload."""
    count = max(1, -(-int(want["size"]) // psize))
    stats.parts = count
    done: list[dict[str, Any]] = []
    with open(src, "rb") as f:
        for number in range(1, count + 1):
            f.seek((number - 1) * psize)
            data = f.read(psize)
            etag = held.get(number)
            if etag is not None and etag.strip('"') == _md5(data):
                stats.kept.append(number)
            else:
                etag = str(client.upload_part(
                    Bucket=want["bucket"], Key=want["key"], UploadId=upload_id,
                    PartNumber=number, Body=data)["ETag"])
                stats.sent.append(number)
                _fault(f"after-part-{number}")
            done.append({"ETag": etag, "PartNumber": number})
    client.complete_multipart_upload(Bucket=want["bucket"], Key=want["key"], UploadId=upload_id,
                                     MultipartUpload={"Parts": done})
