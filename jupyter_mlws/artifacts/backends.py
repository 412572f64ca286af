"""Where blobs live when they are not in the workspace folder: one interface, two backends.

:class:`BlobBackend` is what :class:`~jupyter_mlws.artifacts.ArtifactStore` needs of a remote
blob store. :class:`S3Backend` speaks S3 through boto3 (AWS, MinIO, SeaweedFS, ...);
:class:`FsspecBackend` serves any other fsspec URL (``file://``, ``gcs://`` with gcsfs, ...).

boto3 rather than s3fs for S3: it is the reference client, it reads the endpoint and credentials
from the standard places (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``~/.aws/credentials``, ``AWS_PROFILE``), it gives S3's multipart calls (an object appears only
when the whole upload completes, so a killed upload leaves no visible blob; a retry resumes it,
see :mod:`jupyter_mlws.artifacts.multipart`), and its typed errors let each failure become a
clear message. s3fs would add aiobotocore, which pins
botocore to narrow ranges and conflicts with an installed boto3.

A blob's key is ``<prefix>/blobs/<sha[:2]>/<sha[2:]>``. The uploader hashes the bytes while
copying them into a temp file it owns, so the key is written only with verified content; readers
hash again on download (see :mod:`jupyter_mlws.artifacts.cache`). Credentials are never part of
a location string, a message or a workspace file.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from jupyter_mlws.artifacts import multipart
from jupyter_mlws.artifacts.multipart import UploadStats
from jupyter_mlws.errors import (
    ArtifactCredentialsError,
    ArtifactStoreUnavailableError,
    TeamWorkspaceError,
)

ENV_TIMEOUT = "MLWS_ARTIFACT_TIMEOUT"
DEFAULT_TIMEOUT_S = 10.0


class BlobBackend(Protocol):
    """A remote, content-addressed blob store."""

    #: The store's address for messages (no credentials).
    location: str
    #: The artifact URI it was opened with (no credentials), for another machine to open it.
    uri: str

    def exists(self, sha256: str) -> bool:
        """Whether the complete blob is stored."""

    def upload(self, sha256: str, src: Path, size: int) -> None:
        """Store ``src`` (whose bytes hash to ``sha256``) so that it is visible only whole."""

    def download(self, sha256: str, dest: Path) -> None:
        """Write the blob's bytes to ``dest``; the caller verifies them."""

    def delete(self, sha256: str) -> None:
        """Remove the blob (missing is fine)."""

    # h-teamray: named objects beside the blobs (gc's markers, writers' touches)
    def put_object(self, rel: str, data: bytes) -> float:
        """Write the object ``rel`` (under the store's prefix); the server's time of the write."""

    def list_objects(self, rel_prefix: str) -> tuple[list[tuple[str, float]], float]:
        """``([(rel, last modified)], the server's time now)`` of the objects under a prefix."""

    def delete_object(self, rel: str) -> None:
        """Remove the object ``rel`` (missing is fine)."""


def blob_key(prefix: str, sha256: str) -> str:
    """The object key of a blob under ``prefix``."""
    head = f"{prefix}/" if prefix else ""
    return f"{head}blobs/{sha256[:2]}/{sha256[2:]}"


def check_uri(uri: str) -> None:
    """Refuse an artifact URI that carries credentials (they belong in the standard places)."""
    parts = urlsplit(uri)
    if not parts.scheme:
        raise TeamWorkspaceError(
            f"{uri!r} is not an artifact store URL.",
            hint="Use s3://BUCKET/PREFIX, or another fsspec URL such as file:///shared/mlws.")
    if "@" in parts.netloc or any(
        k in parts.query.lower() for k in ("secret", "key", "token", "password")
    ):
        raise TeamWorkspaceError(
            "The artifact store URL must not carry credentials (they would be written into "
            "workspace files).",
            hint="Give the keys through AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "~/.aws/credentials or AWS_PROFILE, and the URL as s3://BUCKET/PREFIX.")


def timeout_s() -> float:
    """The artifact store's per-request timeout: ``$MLWS_ARTIFACT_TIMEOUT`` seconds or 10."""
    try:
        return max(0.5, float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def open_backend(uri: str, *, state_dir: Path | None = None) -> BlobBackend:
    """The backend for ``uri``: S3 for ``s3://``, fsspec for any other scheme. ``state_dir``
    is a machine-local folder where S3 uploads record their state to be resumed."""
    check_uri(uri)
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("s3", "s3a"):
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise TeamWorkspaceError(
                "An s3:// artifact store needs boto3.",
                hint="pip install 'jupyter_mlws[team]' (or pip install boto3).") from None
        return S3Backend(uri, timeout=timeout_s(), state_dir=state_dir)
    return FsspecBackend(uri)


class S3Backend:
    """Blobs in an S3 bucket (any S3-compatible server), through boto3."""

    def __init__(self, uri: str, *, timeout: float = DEFAULT_TIMEOUT_S,
                 state_dir: Path | None = None) -> None:
        parts = urlsplit(uri)
        self.state_dir = state_dir
        #: What the last multipart upload of this process sent and kept (tests, logs).
        self.last_upload: UploadStats | None = None
        self.uri = uri
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        if not self.bucket:
            raise TeamWorkspaceError(f"{uri!r} names no bucket.", hint="Use s3://BUCKET/PREFIX.")
        import boto3
        from botocore.config import Config

        self._client: Any = boto3.session.Session().client(
            "s3", config=Config(connect_timeout=timeout, read_timeout=timeout,
                                retries={"max_attempts": 2, "mode": "standard"}))
        endpoint = self._client.meta.endpoint_url
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/") + f" (at {endpoint})"

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn botocore's failures into typed errors naming the store, never the keys."""
        from boto3.exceptions import S3UploadFailedError
        from botocore import exceptions as bx

        try:
            yield
        except (bx.NoCredentialsError, bx.PartialCredentialsError):
            raise ArtifactCredentialsError(
                f"No S3 credentials for the artifact store {self.location} ({what}).",
                hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or add "
                "them to ~/.aws/credentials.") from None
        except (bx.ClientError, S3UploadFailedError) as exc:
            code = (exc.response.get("Error", {}).get("Code", "")
                    if isinstance(exc, bx.ClientError) else str(exc))
            if any(c in code for c in ("InvalidAccessKeyId", "SignatureDoesNotMatch",
                                       "AccessDenied", "403", "Forbidden")):
                raise ArtifactCredentialsError(
                    f"The artifact store {self.location} refused the S3 credentials ({what}).",
                    hint="Check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the AWS_PROFILE in "
                    "use) and that they may read and write the bucket.") from None
            if "NoSuchBucket" in code:
                raise ArtifactStoreUnavailableError(
                    f"The bucket {self.bucket!r} of the artifact store {self.location} does "
                    "not exist.", hint="Create it, or fix artifact_uri.") from None
            raise ArtifactStoreUnavailableError(
                f"The artifact store {self.location} failed {what}: {code}.",
                hint="Check that the S3 server is up and AWS_ENDPOINT_URL points at it.") from None
        except (bx.BotoCoreError, OSError) as exc:
            raise ArtifactStoreUnavailableError(
                f"The artifact store {self.location} cannot be reached ({what}): "
                f"{type(exc).__name__}.",
                hint="Check that the S3 server is up and AWS_ENDPOINT_URL points at it; "
                f"{ENV_TIMEOUT} sets the timeout in seconds.") from None

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        with self._errors("checking a blob"):
            try:
                self._client.head_object(Bucket=self.bucket, Key=blob_key(self.prefix, sha256))
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404 or exc.response.get("Error", {}).get("Code") in (
                    "404", "NoSuchKey", "NotFound"
                ):
                    return False
                raise
        return True

    def upload(self, sha256: str, src: Path, size: int) -> None:
        """One PUT up to a part's size; above, a multipart upload that a retry after a crash
        resumes (see :mod:`jupyter_mlws.artifacts.multipart`). Visible only once complete."""
        key = blob_key(self.prefix, sha256)
        with self._errors(f"uploading blob {sha256[:12]}"):
            if size <= multipart.part_bytes():
                with open(src, "rb") as f:
                    self._client.put_object(Bucket=self.bucket, Key=key, Body=f,
                                            Metadata={"sha256": sha256})
            else:
                self.last_upload = multipart.upload(self._client, self.bucket, key, sha256, src,
                                                    size, self.state_dir)
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        if int(head.get("ContentLength", -1)) != size:
            self.delete(sha256)
            raise ArtifactStoreUnavailableError(
                f"The artifact store {self.location} stored {head.get('ContentLength')} bytes of "
                f"blob {sha256[:12]}, not {size}.", hint="Try again; check the S3 server.")

    def abort_uploads_before(self, cutoff: float) -> int:
        """Abort the unfinished blob uploads under this prefix begun before ``cutoff`` (the
        server's clock, seconds since the epoch); how many."""
        aborted = 0
        with self._errors("aborting stale uploads"):
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._key("blobs/"))
            for page in pages:
                for up in page.get("Uploads", []):
                    if up["Initiated"].timestamp() < cutoff:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        aborted += 1
        return aborted

    def download(self, sha256: str, dest: Path) -> None:
        with self._errors(f"downloading blob {sha256[:12]}"):
            self._client.download_file(self.bucket, blob_key(self.prefix, sha256), str(dest))

    def delete(self, sha256: str) -> None:
        with self._errors(f"deleting blob {sha256[:12]}"):
            self._client.delete_object(Bucket=self.bucket, Key=blob_key(self.prefix, sha256))

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def put_object(self, rel: str, data: bytes) -> float:
        with self._errors(f"writing {rel}"):
            resp = self._client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data)
        return _server_time(resp)

    def list_objects(self, rel_prefix: str) -> tuple[list[tuple[str, float]], float]:
        head = len(self._key(""))
        out: list[tuple[str, float]] = []
        now = None
        with self._errors(f"listing {rel_prefix}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(rel_prefix))
            for page in pages:
                now = now or _server_time(page)
                out += [(o["Key"][head:], o["LastModified"].timestamp())
                        for o in page.get("Contents", [])]
        return out, now or time.time()

    def delete_object(self, rel: str) -> None:
        with self._errors(f"deleting {rel}"):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(rel))


    # --- plain objects beside the blobs (live job logs) ---------------------------------------
    def list_folder(self, folder: str, after: str = "") -> list[tuple[str, int]]:
        """(name, size) of the objects in ``folder`` whose names sort after ``after``, in name
        order (at most one page, 1000)."""
        with self._errors(f"listing {folder}"):
            got = self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._key(folder) + "/",
                StartAfter=self._key(f"{folder}/{after}") if after else "")
        return [(o["Key"].rsplit("/", 1)[1], int(o["Size"])) for o in got.get("Contents", [])]

    def get_object(self, key: str, start: int = 0) -> bytes:
        """The bytes at ``key`` from ``start``."""
        with self._errors(f"reading {key}"):
            extra = {"Range": f"bytes={start}-"} if start else {}
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                           **extra)["Body"]
            return bytes(body.read())


class FsspecBackend:
    """Blobs under any fsspec URL; writes go to a temp name and are moved into place."""

    def __init__(self, uri: str) -> None:
        import fsspec

        try:
            self._fs, root = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise TeamWorkspaceError(
                f"No filesystem for the artifact store {uri!r}: {exc}",
                hint="Install the fsspec implementation for that scheme, or use s3://.") from None
        self.root = str(root).rstrip("/")
        self.location = uri
        self.uri = uri

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ArtifactStoreUnavailableError(
                f"The artifact store {self.location} failed {what}: {exc.strerror or exc}.",
                hint="Check that the location is reachable and writable.") from None

    def exists(self, sha256: str) -> bool:
        with self._errors("checking a blob"):
            return bool(self._fs.exists(blob_key(self.root, sha256)))

    def upload(self, sha256: str, src: Path, size: int) -> None:
        final = blob_key(self.root, sha256)
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}.part"
        with self._errors(f"uploading blob {sha256[:12]}"):
            self._fs.makedirs(f"{self.root}/tmp", exist_ok=True)
            self._fs.put_file(str(src), tmp)
            if int(self._fs.size(tmp)) != size:
                self._fs.rm(tmp)
                raise ArtifactStoreUnavailableError(
                    f"The artifact store {self.location} stored a short copy of blob "
                    f"{sha256[:12]}.", hint="Try again.")
            self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self._fs.mv(tmp, final)

    def download(self, sha256: str, dest: Path) -> None:
        with self._errors(f"downloading blob {sha256[:12]}"):
            self._fs.get_file(blob_key(self.root, sha256), str(dest))

    def delete(self, sha256: str) -> None:
        with self._errors(f"deleting blob {sha256[:12]}"), contextlib.suppress(FileNotFoundError):
            self._fs.rm(blob_key(self.root, sha256))

    def list_folder(self, folder: str, after: str = "") -> list[tuple[str, int]]:
        """(name, size) of the objects in ``folder`` whose names sort after ``after``."""
        with self._errors(f"listing {folder}"):
            try:
                found = self._fs.ls(_join(self.root, folder), detail=True)
            except FileNotFoundError:
                return []
        items = [(str(o["name"]).rstrip("/").rsplit("/", 1)[1], int(o.get("size") or 0))
                 for o in found if o.get("type") == "file"]
        return sorted(i for i in items if i[0] > after)[:1000]

    def get_object(self, key: str, start: int = 0) -> bytes:
        """The bytes at ``key`` from ``start``."""
        with self._errors(f"reading {key}"):
            return bytes(self._fs.cat_file(_join(self.root, key), start=start or None))

    def put_object(self, rel: str, data: bytes) -> float:
        """Write ``data`` at ``rel`` (a temp name moved into place, so readers see it whole);
        its modification time."""
        tmp = f"{self.root}/tmp/{uuid.uuid4().hex}.part"
        path = _join(self.root, rel)
        with self._errors(f"writing {rel}"):
            self._fs.makedirs(f"{self.root}/tmp", exist_ok=True)
            self._fs.pipe_file(tmp, data)
            self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self._fs.mv(tmp, path)
            return _mtime(self._fs.info(path))

    def list_objects(self, rel_prefix: str) -> tuple[list[tuple[str, float]], float]:
        base = f"{self.root}/{rel_prefix}".rstrip("/")
        with self._errors(f"listing {rel_prefix}"):
            try:
                found = self._fs.find(base, detail=True)
            except FileNotFoundError:
                found = {}
        head = len(self._fs._strip_protocol(self.root).rstrip("/")) + 1
        return ([(str(self._fs._strip_protocol(p))[head:], _mtime(info))
                 for p, info in found.items()], time.time())

    def delete_object(self, rel: str) -> None:
        with self._errors(f"deleting {rel}"), contextlib.suppress(FileNotFoundError):
            self._fs.rm(f"{self.root}/{rel}")


def _server_time(resp: dict[str, Any]) -> float:
    """The server's clock from an S3 response's ``Date`` header (this machine's if absent)."""
    from email.utils import parsedate_to_datetime

    date = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return float(parsedate_to_datetime(str(date)).timestamp()) if date else time.time()
    except (TypeError, ValueError):
        return time.time()


def _mtime(info: dict[str, Any]) -> float:
    """An fsspec entry's modification time in seconds since the epoch."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value: Any = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
    return time.time()


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key
