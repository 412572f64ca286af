"""The one error tree of jupyter_mlws.

Every error carries a human message that says what is wrong and, where there is one, how to fix
it; a stable ``code`` for scripts; and the HTTP status a REST route answers with. Surfaces (CLI,
magics, server) print ``str(error)`` and never a traceback for these.
"""

from __future__ import annotations

from typing import Any

from jupyter_mlws.fileio import human_size


class MlwsError(Exception):
    """Base of every error the workspace raises on purpose."""

    code: str = "error"
    http_status: int = 500

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        self.message = message
        self.hint = hint
        self.details = details
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON body a REST route answers with."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details:
            body["details"] = {k: v for k, v in self.details.items() if _jsonable(v)}
        return body


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, list, dict, type(None)))


# --- input problems (400) -------------------------------------------------------------------
class ValidationError(MlwsError):
    """A value given by the user is not acceptable."""

    code = "invalid"
    http_status = 400


class InvalidNameError(ValidationError):
    code = "invalid_name"


class SpecError(ValidationError):
    """A YAML or dict spec has a problem; ``location`` is ``file:line`` when known."""

    code = "invalid_spec"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        where = ""
        if file:
            where = f"{file}:{line}" if line else file
        prefix = ": ".join(p for p in (where, f"field '{field}'" if field else "") if p)
        super().__init__(
            f"{prefix}: {message}" if prefix else message,
            hint=hint,
            file=file,
            line=line,
            field=field,
        )


class UnsafePathError(ValidationError):
    code = "unsafe_path"


class ReservedNameError(ValidationError):
    code = "reserved_name"


# --- lookups (404) ----------------------------------------------------------------------------
class NotFoundError(MlwsError):
    code = "not_found"
    http_status = 404


class AssetNotFoundError(NotFoundError):
    code = "asset_not_found"


class WorkspaceNotFoundError(NotFoundError):
    code = "workspace_not_found"


class UnknownPluginError(NotFoundError):
    code = "unknown_plugin"


# --- state conflicts (409) -----------------------------------------------------------------------
class ConflictError(MlwsError):
    code = "conflict"
    http_status = 409


class VersionConflictError(ConflictError):
    """The same name and version already exist with different content."""

    code = "version_conflict"


class ArchivedError(ConflictError):
    code = "archived"


# --- the machine (5xx) --------------------------------------------------------------------------
class StoreError(MlwsError):
    code = "store_error"
    http_status = 500


class BuildError(MlwsError):
    """An environment build failed; ``step`` and ``log_tail`` say where."""

    code = "build_failed"
    http_status = 500

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        log_tail: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.step = step
        self.log_tail = log_tail
        super().__init__(message, hint=hint, step=step, log_tail=log_tail)

    def __str__(self) -> str:
        text = super().__str__()
        if self.log_tail:
            text += "\n--- last lines of the build log ---\n" + self.log_tail
        return text


class UnsupportedEnvironmentError(ValidationError):
    """The definition cannot be materialized by the chosen builder (e.g. Docker steps in a venv)."""

    code = "unsupported_environment"


class DockerUnavailableError(MlwsError):
    code = "docker_unavailable"
    http_status = 503

    def __init__(self, message: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(
            message or "The Docker engine cannot be reached.",
            hint=hint
            or "Start it (on Debian: `bash scripts/docker-up.sh` from the project, or "
            "`dockerd &`) and check with `docker info`.",
        )


class RayHeadUnreachableError(MlwsError):
    """The Ray head's dashboard does not answer."""

    code = "ray_unreachable"
    http_status = 503


class MagicError(Exception):
    """A problem a magic reports as one line: the cell fails and IPython shows no traceback.
    Magics turn every :class:`MlwsError` into one of these (message and hint on one line)."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


# --- storage (blob store, metadata store) -----------------------------------------------------
class DiskFullError(StoreError):
    """A write found no space left on the disk that holds ``folder``."""

    code = "disk_full"
    http_status = 507

    def __init__(
        self,
        folder: str,
        *,
        needed: int | None = None,
        free: int | None = None,
        what: str = "the write",
        hint: str | None = None,
    ) -> None:
        self.folder = folder
        self.needed = needed
        self.free = free
        parts = [f"The disk holding {folder!r} is full"]
        if needed is not None:
            parts.append(f": {what} needs {human_size(needed)}")
            if free is not None:
                parts.append(f" and {human_size(free)} is free")
        else:
            parts.append(f": {what} needs more space than is left")
        super().__init__(
            "".join(parts) + ". Nothing was recorded.",
            hint=hint
            or "Free some space there (`mlws workspace gc` removes unreferenced blobs), or move "
            "the workspace to a bigger disk, and try again.",
            folder=folder,
            needed=needed,
            free=free,
        )


class StoreBusyError(StoreError):
    """The metadata store stayed locked by another writer through every retry."""

    code = "store_busy"
    http_status = 503


# --- job core (issue 9: launch contract, typed parameters) ---------------------------------------


class LaunchFormatError(MlwsError):
    """A job's ``launch.json`` is unreadable, or written by a newer jupyter_mlws."""

    code = "launch_format"


class ParameterTypeError(ValidationError):
    """A notebook parameter's value has another type than the notebook's default for it.

    ``details``: ``parameter``, ``expected`` (``int``, ``float``, ``bool``), ``value``.
    """

    code = "parameter_type"


# --- secrets and spec hardening (issue 9, h-specs) -----------------------------------------------
class SecretKeyError(MlwsError):
    """A secret cannot be encrypted or decrypted: the key is missing, wrong or unreadable."""

    code = "secret_key"
    http_status = 500


# --- Azure ML compatibility (issue 10, h-azure: compute names, job conventions) --------------------
class CloudOnlyError(ValidationError):
    """The YAML describes something that exists only in the Azure ML cloud (AutoML, Spark, ...)."""

    code = "cloud_only"


class CloudStorageError(ValidationError):
    """An input names Azure cloud storage (``wasbs://``, ``abfss://``), unreachable offline."""

    code = "cloud_storage_offline"


class DownloadError(MlwsError):
    """An ``https://`` input could not be downloaded."""

    code = "download_failed"
    http_status = 502


# --- online endpoints (issue 11, h-endpoints) ----------------------------------------------------
class DeploymentFailedError(MlwsError):
    """An online deployment did not start: its ``init()`` raised, or its replicas never got ready.

    ``details``: ``endpoint``, ``deployment``, ``error`` (the traceback and the log's tail).
    """

    code = "deployment_failed"
    http_status = 422


# --- registries and curated environments (issue 10, h-registries) ---------------------------------
class RegistryNotFoundError(NotFoundError):
    """No registry of that name is known to this user (nor built in)."""

    code = "registry_not_found"


class RegistryAssetNotFoundError(NotFoundError):
    """The registry has no such environment, model or component (or no such version)."""

    code = "registry_asset_not_found"


class RegistryLocationError(ValidationError):
    """A registry location that cannot be used (e.g. ``s3://`` before the team workspace)."""

    code = "registry_location"


class RegistryConflictError(ConflictError):
    """The registry already holds that name and version with other content, or the registry
    name is taken by another location."""

    code = "registry_conflict"


class RegistryReadOnlyError(ValidationError):
    """The built-in ``azureml`` registry is shipped with the package and cannot be written."""

    code = "registry_read_only"


class RegistryCorruptError(MlwsError):
    """A registry entry or blob does not hold what it says (a hash mismatch, bad JSON)."""

    code = "registry_corrupt"


class GpuEnvironmentError(UnsupportedEnvironmentError):
    """A GPU/CUDA-only curated environment with no CPU equivalent on the package index."""

    code = "gpu_environment"

# --- Python images and conda files offline (issue 10, h-images) ----------------------------------
class PythonUnavailableError(UnsupportedEnvironmentError):
    """The Python version an environment asks for has no base image/interpreter here.

    ``details``: ``asked`` (the version), ``available`` (the versions there are).
    """

    code = "python_unavailable"


class CondaTranslationError(UnsupportedEnvironmentError):
    """Conda dependencies with no PyPI equivalent (conda channels are not reachable offline).

    ``details``: ``packages`` (each dependency, with why).
    """

    code = "conda_no_pypi"


# --- team workspace (helper "team"): shared servers ----------------------------------------------
class ArtifactStoreUnavailableError(StoreError):
    """The artifact store (S3 or another fsspec location) did not answer, or refused a request,
    within its timeout. ``location`` names it (without credentials)."""

    code = "artifact_store_unavailable"
    http_status = 503


class ArtifactCredentialsError(StoreError):
    """The artifact store refused the credentials (missing or wrong); they are never echoed."""

    code = "artifact_credentials"
    http_status = 503


class MetadataStoreUnavailableError(StoreError):
    """The metadata store's database server (PostgreSQL) cannot be reached."""

    code = "store_unavailable"
    http_status = 503


class TeamWorkspaceError(ValidationError):
    """A team workspace setting that cannot be used (a URI with credentials in it, joining a
    store that holds no workspace)."""

    code = "team_workspace"

# --- environments over time: locks, patched bases (issue 13, h-envtime) --------------------------
class LockInstallError(BuildError):
    """An environment's lock no longer installs (a pinned version yanked/absent, a changed file).

    ``details``: ``package``, ``version``. The image/venv built earlier stays in use.
    """

    code = "lock_install_failed"

    def __init__(self, message: str, *, package: str, version: str, hint: str | None = None,
                 log_tail: str | None = None) -> None:
        super().__init__(message, step="install the lock", log_tail=log_tail, hint=hint)
        self.details.update(package=package, version=version)


class NoLockError(NotFoundError):
    """An environment version has no recorded lock yet (it was never built here)."""

    code = "no_lock"

# --- team workspace: logs, identity, migration (issue 14, h-teamlogs) ---------------------------
class MigrationConflictError(ConflictError):
    """``mlws workspace migrate``: the team workspace already holds a version (or a job) of the
    same name with other content. ``details``: ``kind``, ``name``, ``version``."""

    code = "migration_conflict"

    def __init__(self, message: str, *, kind: str, name: str, version: str,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.details.update(kind=kind, name=name, version=version)


class MigrationIntegrityError(MlwsError):
    """``mlws workspace migrate``: a blob of the source workspace does not hash to its name (the
    file was changed or damaged); nothing of it was copied."""

    code = "migration_integrity"
