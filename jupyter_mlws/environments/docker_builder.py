"""Build environment images with a real Docker engine (through the Engine API of docker-py).

An environment's image is ``mlws/mlws_<hash>:latest``; the hash is its identity, so an image that
exists *is* the build (inspect before build). Builds run under a file lock per hash, so two
processes asking for one hash build once. Labels on each image: ``org.mlws.hash``,
``org.mlws.environment`` (``name:version`` that first built it), ``org.mlws.version`` (package
version), ``org.mlws.kind``, ``org.mlws.base-image`` and ``org.mlws.base-id`` (the base's image
id, to tell when the base moved).

Next to each lock, ``<hash>.json`` records what a lookup cannot read from the engine in
milliseconds: the resolved packages, the base digest and the build time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.utils import parse_repository_tag

from jupyter_mlws.artifacts import ArtifactStore, StoredArtifact
from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.environments.builds import BuildResult, hash_lock, tail
from jupyter_mlws.environments.dockerfile import (
    FREEZE_BEGIN,
    FREEZE_END,
    MESSAGE_PREFIX,
    VENV_PATH,
    build_context_files,
)
from jupyter_mlws.environments.identity import IMAGE_REPOSITORY, image_name
from jupyter_mlws.errors import (
    BuildError,
    ConflictError,
    DockerUnavailableError,
    NotFoundError,
    UnsupportedEnvironmentError,
)

LABEL_HASH = "org.mlws.hash"
LABEL_ENVIRONMENT = "org.mlws.environment"
LABEL_VERSION = "org.mlws.version"
LABEL_KIND = "org.mlws.kind"
LABEL_BASE_IMAGE = "org.mlws.base-image"
LABEL_BASE_ID = "org.mlws.base-id"
#: Base images made on this machine by ``mlws image bootstrap``; there is nothing to pull.
LOCAL_BASE_PREFIX = "mlws/base-"
TAG = "latest"

Log = Callable[[str], None]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_COMMAND = re.compile(r"^The command '.*' returned", re.DOTALL)
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_FREEZE_SCRIPT = (
    f"if [ -x {VENV_PATH}/bin/python ]; then {VENV_PATH}/bin/python -m pip freeze; "
    "elif command -v python3 >/dev/null 2>&1; then python3 -m pip freeze; "
    "elif command -v python >/dev/null 2>&1; then python -m pip freeze; fi 2>/dev/null; "
    "c=$(command -v micromamba || command -v mamba || command -v conda || true); "
    'if [ -n "$c" ]; then echo "#mlws-conda"; '
    '"$c" list -n base --export 2>/dev/null || "$c" list -n base 2>/dev/null; fi; true'
)


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("jupyter_mlws")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"


@contextlib.contextmanager
def _engine() -> Iterator[None]:
    """Turn "cannot reach the engine" into :class:`DockerUnavailableError`."""
    try:
        yield
    except requests.exceptions.ConnectionError as exc:
        raise DockerUnavailableError(f"The Docker engine cannot be reached: {exc}") from exc
    except docker.errors.DockerException as exc:
        if isinstance(exc, docker.errors.APIError):
            raise
        text = str(exc)
        if "Error while fetching server API version" in text or "Connection" in text:
            raise DockerUnavailableError(f"The Docker engine cannot be reached: {text}") from exc
        raise


def _freeze_from_log(text: str) -> list[str] | None:
    """The ``pip freeze`` lines the rendered pip step printed, or ``None`` (step was cached)."""
    lines = text.splitlines()
    try:
        start = lines.index(FREEZE_BEGIN)
        end = lines.index(FREEZE_END, start)
    except ValueError:
        return None
    return [ln.strip() for ln in lines[start + 1 : end] if ln.strip() and not ln.startswith("#")]


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tar(files: Mapping[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0  # identical contexts give identical tars
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


class DockerBuilder:
    """Builds (or adopts) the image of an environment in a Docker engine.

    ``lock_dir`` holds the per-hash locks and build records. ``registry`` (``host:port``), when
    set, is where images are pulled from on a local miss and pushed to after a build.
    ``artifacts`` is the store that holds the snapshots of build contexts.
    """

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        lock_dir: Path,
        registry: str | None = None,
        package_version: str | None = None,
        artifacts: ArtifactStore | None = None,
        build_timeout: int | None = None,
    ) -> None:
        self._client = client
        self.lock_dir = Path(lock_dir)
        self.registry = registry.rstrip("/") if registry else None
        self.package_version = package_version or _package_version()
        self.artifacts = artifacts
        self.build_timeout = build_timeout

    # --- engine ------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            with _engine():
                self._client = docker.from_env()
        return self._client

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        with _engine():
            try:
                return dict(self.client.api.inspect_image(ref))
            except docker.errors.NotFound:
                return None

    def ping(self) -> None:
        """Raise :class:`DockerUnavailableError` unless the engine answers."""
        with _engine():
            self.client.ping()

    # --- lookup ------------------------------------------------------------------------------

    def image_ref(self, spec: EnvironmentSpec) -> str:
        return f"{image_name(spec.env_hash())}:{TAG}"

    def lookup(self, spec: EnvironmentSpec, *, env_hash: str | None = None) -> BuildResult | None:
        """The environment's image when it exists (one inspect call), else ``None``.

        With a registry configured, a local miss tries to pull it from there.
        """
        h = env_hash or spec.env_hash()
        ref = f"{image_name(h)}:{TAG}"
        info = self._inspect(ref)
        if info is None and self.registry:
            info = self._pull_from_registry(h)
        if info is None:
            return None
        return self._result(h, ref, info, spec.kind, cached=True)

    def _result(
        self, h: str, ref: str, info: Mapping[str, Any], kind: str, *, cached: bool
    ) -> BuildResult:
        labels = (info.get("Config") or {}).get("Labels") or {}
        record = self._read_record(h)
        if record.get("image_id") != info["Id"]:
            record = {}
        digests = info.get("RepoDigests") or []
        if kind == "image" and not labels.get(LABEL_BASE_ID) and not record:
            record = {"base_image_id": info["Id"]}  # an adopted image is its own base
        return BuildResult(
            env_hash=h,
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
        )

    # --- build records -----------------------------------------------------------------------

    def _record_path(self, h: str) -> Path:
        return self.lock_dir / f"{h}.json"

    def _read_record(self, h: str) -> dict[str, Any]:
        try:
            data = json.loads(self._record_path(h).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_record(self, result: BuildResult, environment: str) -> None:
        data = result.to_dict()
        data.pop("log", None)
        data.pop("cached", None)
        data["environment"] = environment
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._record_path(result.env_hash).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self._record_path(result.env_hash))

    # --- build -------------------------------------------------------------------------------

    def build(
        self,
        spec: EnvironmentSpec,
        *,
        env_name: str,
        env_version: str,
        log: Log = print,
        refresh_base: bool = False,
        no_cache: bool = False,
    ) -> BuildResult:
        """The environment's image: found (``cached=True``), adopted or built.

        ``refresh_base`` re-resolves the base (pulling it where a registry answers) and rebuilds
        when it now is another image than the one the cached image was built on. ``no_cache``
        builds every layer afresh when a build happens (the engine's ``--no-cache``).
        """
        h = spec.env_hash()
        environment = f"{env_name}:{env_version}"
        with hash_lock(self.lock_dir, h):
            hit = self.lookup(spec, env_hash=h)
            if hit is not None and refresh_base:
                base_ref = hit.base_image or self._base_ref(spec)
                current = self._refresh_base(base_ref, log) if base_ref else None
                if current is not None and hit.base_image_id and current != hit.base_image_id:
                    log(
                        f"The base {base_ref} changed ({hit.base_image_id[:19]} -> "
                        f"{current[:19]}): rebuilding {hit.image}"
                    )
                    hit = None
            if hit is not None:
                log(f"Using the cached image {hit.image} ({hit.image_id[:19]})")
                if self._read_record(h).get("image_id") != hit.image_id:
                    # Built elsewhere (another lock_dir, a registry): record its packages once.
                    hit.resolved_packages = self._freeze(hit.image, log, quiet=True)
                    self._write_record(hit, environment)
                return hit
            kind = spec.kind
            if kind == "image":
                result = self._adopt_image(spec, h, log)
            elif kind == "managed":
                result = self._build_managed(spec, h, environment, log, no_cache)
            else:
                result = self._build_context(spec, h, environment, log, no_cache)
            if self.registry:
                self._push(result, log)
            self._write_record(result, environment)
            return result

    def _labels(
        self, h: str, environment: str, kind: str, base: str | None, base_id: str | None
    ) -> dict[str, str]:
        labels = {
            LABEL_HASH: h,
            LABEL_ENVIRONMENT: environment,
            LABEL_VERSION: self.package_version,
            LABEL_KIND: kind,
        }
        if base:
            labels[LABEL_BASE_IMAGE] = base
        if base_id:
            labels[LABEL_BASE_ID] = base_id
        return labels

    def _base_ref(self, spec: EnvironmentSpec) -> str | None:
        return spec.image if spec.kind in ("managed", "image") else None

    def _require_base(self, base: str, log: Log) -> dict[str, Any]:
        """Inspect the base image, pulling it when it is not local; a clear error otherwise."""
        info = self._inspect(base)
        if info is not None:
            return info
        if base.startswith(LOCAL_BASE_PREFIX):
            raise BuildError(
                f"The base image {base} is not in the Docker engine.",
                step=f"FROM {base}",
                hint="It is made on this machine: run `mlws image bootstrap` (about a minute).",
            )
        log(f"Pulling the base image {base} ...")
        error = self._pull(base, log)
        info = self._inspect(base)
        if info is None:
            raise BuildError(
                f"The base image {base} is not in the Docker engine and could not be pulled"
                f"{': ' + error if error else ''}.",
                step=f"FROM {base}",
                hint=f"Pull it (`docker pull {base}`), load it (`docker load -i FILE`) or use "
                "an image made by `mlws image bootstrap`.",
            )
        return info

    def _pull(self, ref: str, log: Log | None = None) -> str | None:
        """Pull ``ref``; the error text when it fails, else ``None``."""
        repo, tag = parse_repository_tag(ref)
        if tag is None and "@" not in repo:
            tag = TAG
        with _engine():
            try:
                for chunk in self.client.api.pull(repo, tag=tag, stream=True, decode=True):
                    if "error" in chunk:
                        return str(chunk["error"])
                    if log is not None and "status" in chunk and "progress" not in chunk:
                        log(f"{chunk.get('id', '')} {chunk['status']}".strip())
            except docker.errors.APIError as exc:
                return str(exc.explanation or exc)
        return None

    def _refresh_base(self, base: str, log: Log) -> str | None:
        """Pull ``base`` when it comes from a registry, then its current image id."""
        if not base.startswith(LOCAL_BASE_PREFIX):
            error = self._pull(base)
            if error:
                log(f"Could not pull {base} ({error.strip()}); using the local copy.")
        info = self._inspect(base)
        return str(info["Id"]) if info else None

    def base_changed(self, spec: EnvironmentSpec) -> bool | None:
        """Whether the base now resolves to another image than the cached image was built on.

        ``None`` when it cannot be told (no image yet, base unknown or missing). Local only:
        nothing is pulled.
        """
        h = spec.env_hash()
        info = self._inspect(f"{image_name(h)}:{TAG}")
        if info is None:
            return None
        hit = self._result(h, f"{image_name(h)}:{TAG}", info, spec.kind, cached=True)
        base = hit.base_image or self._base_ref(spec)
        if not base or not hit.base_image_id:
            return None
        current = self._inspect(base)
        if current is None:
            return None
        return str(current["Id"]) != hit.base_image_id

    # --- the three kinds ---------------------------------------------------------------------

    def _build_managed(
        self, spec: EnvironmentSpec, h: str, environment: str, log: Log, no_cache: bool = False
    ) -> BuildResult:
        assert spec.image is not None
        base_info = self._require_base(spec.image, log)
        labels = self._labels(h, environment, "managed", spec.image, str(base_info["Id"]))
        files = build_context_files(spec, labels=labels)  # one LABEL step, not one per label
        t0 = time.monotonic()
        text = self._run_build(
            environment,
            log,
            labels=None,
            fileobj=_tar(files),
            custom_context=True,
            dockerfile="Dockerfile",
            nocache=no_cache,
            tag=f"{image_name(h)}:{TAG}",
        )
        return self._finish(spec, h, base_info, t0, log, base_ref=spec.image, text=text)

    def _build_context(
        self, spec: EnvironmentSpec, h: str, environment: str, log: Log, no_cache: bool = False
    ) -> BuildResult:
        assert spec.build is not None
        tmp = Path(tempfile.mkdtemp(prefix=f"mlws-context-{h[:12]}-"))
        try:
            self._materialize_context(spec, tmp)
            dockerfile = tmp / spec.build.dockerfile_path
            if not dockerfile.is_file():
                raise BuildError(
                    f"The build context has no {spec.build.dockerfile_path}.",
                    hint="Set build.dockerfile_path to the Dockerfile inside the context.",
                )
            base = final_base(dockerfile.read_text(encoding="utf-8", errors="replace"))
            base_info = None
            if base is not None and base.lower() != "scratch":
                if base.startswith(LOCAL_BASE_PREFIX):
                    base_info = self._require_base(base, log)
                else:
                    base_info = self._inspect(base)  # else the engine pulls it while building
            labels = self._labels(
                h, environment, "context", base, str(base_info["Id"]) if base_info else None
            )
            t0 = time.monotonic()
            text = self._run_build(
                environment,
                log,
                labels=labels,
                path=str(tmp),
                dockerfile=spec.build.dockerfile_path,
                nocache=no_cache,
                tag=f"{image_name(h)}:{TAG}",
            )
            if base_info is None and base is not None and base.lower() != "scratch":
                base_info = self._inspect(base)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self._finish(spec, h, base_info, t0, log, base_ref=base, text=text)

    def _materialize_context(self, spec: EnvironmentSpec, dest: Path) -> None:
        assert spec.build is not None
        sha = spec.build.tree_sha256
        if sha and self.artifacts is not None:
            self.artifacts.materialize(StoredArtifact("folder", sha, 0, 0, "context"), dest)
            return
        if spec.build.path and Path(spec.build.path).is_dir():
            # Not registered yet (or no store given): the folder as it is now.
            shutil.copytree(spec.build.path, dest, dirs_exist_ok=True, symlinks=False)
            return
        raise UnsupportedEnvironmentError(
            "The build context of this environment is neither in the artifact store nor on disk.",
            hint="Register the environment (its context is snapshotted then) and build again.",
        )

    def _adopt_image(self, spec: EnvironmentSpec, h: str, log: Log) -> BuildResult:
        """A ready image: pull it when missing, then tag it as the environment's image."""
        assert spec.image is not None
        ref = spec.image
        t0 = time.monotonic()
        info = self._inspect(ref)
        if info is None:
            log(f"Pulling {ref} ...")
            error = self._pull(ref, log)
            info = self._inspect(ref)
            if info is None:
                raise BuildError(
                    f"The image {ref} is not in the Docker engine and could not be pulled"
                    f"{': ' + error.strip() if error else ''}.",
                    step=f"pull {ref}",
                    hint=f"Check the name, log in to its registry (`docker login`), or load it "
                    f"(`docker load -i FILE`) and then `docker tag` it as {ref}.",
                )
        target = image_name(h)
        with _engine():
            self.client.api.tag(info["Id"], target, TAG, force=True)
        log(f"Tagged {ref} ({str(info['Id'])[:19]}) as {target}:{TAG}; no build needed.")
        return self._finish(spec, h, info, t0, log, base_ref=ref, tolerate_no_python=True)

    def _finish(
        self,
        spec: EnvironmentSpec,
        h: str,
        base_info: Mapping[str, Any] | None,
        t0: float,
        log: Log,
        *,
        base_ref: str | None = None,
        tolerate_no_python: bool = False,
        text: str = "",
    ) -> BuildResult:
        ref = f"{image_name(h)}:{TAG}"
        seconds = time.monotonic() - t0
        info = self._inspect(ref)
        if info is None:
            raise BuildError(f"The build finished but {ref} is not in the engine.")
        packages = _freeze_from_log(text)
        if packages is None or (spec.kind == "managed" and spec.conda_packages()):
            packages = self._freeze(ref, log, quiet=tolerate_no_python)
        base_digests = (base_info or {}).get("RepoDigests") or []
        result = self._result(h, ref, info, spec.kind, cached=False)
        result.build_seconds = round(seconds, 3)
        result.log = text
        result.resolved_packages = packages
        result.base_image = base_ref
        result.base_image_id = str(base_info["Id"]) if base_info else result.base_image_id
        result.base_digest = base_digests[0] if base_digests else None
        if spec.kind == "image":
            result.digest = result.base_digest
        return result

    # --- the engine's build ------------------------------------------------------------------

    def _run_build(
        self, environment: str, log: Log, *, labels: dict[str, str] | None, **kwargs: Any
    ) -> str:
        """Run one engine build, streaming its log; the whole log, or :class:`BuildError`."""
        lines: list[str] = []
        pending = ""
        step: tuple[str, str, str] | None = None
        error: str | None = None

        def emit(line: str) -> None:
            nonlocal step
            line = _ANSI.sub("", line)
            lines.append(line)
            m = _STEP.match(line)
            if m:
                step = (m.group(1), m.group(2), m.group(3))
                log(f"==> [mlws {m.group(1)}/{m.group(2)}] {m.group(3)}")
            else:
                log(line)

        with _engine():
            try:
                stream: Iterable[dict[str, Any]] = self.client.api.build(
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                    labels=labels,
                    timeout=self.build_timeout,
                    **kwargs,
                )
                for chunk in stream:
                    if "stream" in chunk:
                        pending += str(chunk["stream"])
                        while "\n" in pending:
                            line, pending = pending.split("\n", 1)
                            emit(line.rstrip("\r"))
                    elif "error" in chunk or "errorDetail" in chunk:
                        detail = chunk.get("errorDetail") or {}
                        error = str(chunk.get("error") or detail.get("message") or "build failed")
                    elif "status" in chunk and "progress" not in chunk:
                        emit(f"{chunk.get('id', '')} {chunk['status']}".strip())
            except docker.errors.APIError as exc:
                error = str(exc.explanation or exc)
        if pending:
            emit(pending)
        if error:
            emit(error)
        text = "\n".join(lines)
        if error:
            raise self._build_error(environment, error, step, text)
        return text

    @staticmethod
    def _build_error(
        environment: str, error: str, step: tuple[str, str, str] | None, text: str
    ) -> BuildError:
        own = [
            ln[len(MESSAGE_PREFIX) :] for ln in text.splitlines() if ln.startswith(MESSAGE_PREFIX)
        ]
        where = f" at step {step[0]}/{step[1]} ({_short(step[2])})" if step else ""
        errors = [ln for ln in text.splitlines() if ln.startswith(("ERROR:", "E: ", "error:"))]
        if own:
            reason = own[-1]
        elif errors:
            reason = _short(errors[-1], 300)
        else:
            reason = _short(_COMMAND.sub("The command returned", error.strip()), 300)
        hint = None
        low = text.lower()
        if "no matching distribution" in low or "could not find a version" in low:
            hint = "Check the package names and versions (pip's error is in the log)."
        elif "pull access denied" in low or "no such host" in low or "not found" in error:
            hint = (
                "The base image could not be found or pulled: pull or load it first, or use a "
                "base made by `mlws image bootstrap`."
            )
        return BuildError(
            f"Building the image of {environment} failed{where}: {reason}",
            step=step[2] if step else None,
            log_tail=tail(text),
            hint=hint,
        )

    def _freeze(self, ref: str, log: Log, *, quiet: bool = False) -> list[str]:
        """``pip freeze`` (and ``conda list --export``) inside a short-lived container."""
        try:
            with _engine():
                out = self.client.containers.run(
                    ref,
                    command=[_FREEZE_SCRIPT],
                    entrypoint=["/bin/sh", "-c"],
                    remove=True,
                    network_disabled=True,
                    stdout=True,
                    stderr=False,
                )
        except docker.errors.DockerException as exc:
            if not quiet:
                log(f"Could not list the installed packages: {exc}")
            return []
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
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

    # --- registry ----------------------------------------------------------------------------

    def _pull_from_registry(self, h: str) -> dict[str, Any] | None:
        assert self.registry
        remote = f"{self.registry}/{image_name(h)}"
        if self._pull(f"{remote}:{TAG}") is not None:
            return None
        info = self._inspect(f"{remote}:{TAG}")
        if info is None:
            return None
        with _engine():
            self.client.api.tag(info["Id"], image_name(h), TAG, force=True)
        return self._inspect(f"{image_name(h)}:{TAG}")

    def _push(self, result: BuildResult, log: Log) -> None:
        assert self.registry
        remote = f"{self.registry}/{image_name(result.env_hash)}"
        try:
            with _engine():
                self.client.api.tag(result.image_id, remote, TAG, force=True)
                for chunk in self.client.api.push(remote, tag=TAG, stream=True, decode=True):
                    if "error" in chunk:
                        log(f"Could not push {remote}:{TAG}: {chunk['error']}")
                        return
                    aux = chunk.get("aux") or {}
                    if aux.get("Digest"):
                        result.digest = f"{remote}@{aux['Digest']}"
            log(f"Pushed {remote}:{TAG}")
        except docker.errors.APIError as exc:
            log(f"Could not push {remote}:{TAG}: {exc.explanation or exc}")

    # --- housekeeping ------------------------------------------------------------------------

    def images(self) -> list[dict[str, Any]]:
        """Every ``mlws/mlws_*`` image: id, tags, size, created, labels."""
        with _engine():
            rows = self.client.api.images(filters={"reference": f"{IMAGE_REPOSITORY}*"})
        out = []
        for row in rows:
            tags = [t for t in row.get("RepoTags") or [] if t.startswith(IMAGE_REPOSITORY)]
            out.append(
                {
                    "id": row["Id"],
                    "tags": tags,
                    "size": int(row.get("Size") or 0),
                    "created": int(row.get("Created") or 0),
                    "labels": dict(row.get("Labels") or {}),
                }
            )
        return out

    def remove(self, image_ref: str, *, force: bool = False) -> None:
        """Remove an image (or, for a ready image adopted by tag, just that tag)."""
        with _engine():
            try:
                self.client.api.remove_image(image_ref, force=force)
            except docker.errors.NotFound as exc:
                raise NotFoundError(f"There is no image {image_ref!r}.") from exc
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise ConflictError(
                        f"The image {image_ref} is in use: {exc.explanation}",
                        hint="Remove the containers that use it first, or pass force.",
                    ) from exc
                raise
