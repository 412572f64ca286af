"""Build environment images with a real Docker engine (through the Engine API of docker-py).

An environment's image is ``mlws/mlws_<hash>:latest``; the hash is its identity, so an image that
exists *is* the build (inspect before build). Builds run under a file lock per hash, so two
processes asking for one hash build once. ``no_cache`` rebuilds every layer (the engine's
``--no-cache``) even when the image exists: the new image takes the tag, the old one is removed
when nothing uses it, and both builds stay in the build history.

Labels, build records and the build context live in :mod:`.docker_images`; the engine calls of a
build (streaming, pull, push, listing packages) in :mod:`.docker_calls`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from jupyter_mlws.artifacts import ArtifactStore, StoredArtifact
from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.docker_engine import docker_client, engine_calls
from jupyter_mlws.environments import docker_calls as calls
from jupyter_mlws.environments.bootstrap import (
    BASE_IMAGES,
    HOST_CA_BUNDLE,
    PIP_CA_DOCKERFILE_SNIPPET,
    bootstrap_base_images,
)
from jupyter_mlws.environments.build_plan import BuildPlan, check_index, plan_build
from jupyter_mlws.environments.builds import (
    BuilderName,
    BuildHistory,
    BuildResult,
    LockSource,
    hash_lock,
    utc_now,
)
from jupyter_mlws.environments.docker_images import (
    LABEL_BASE_ID,
    LABEL_BASE_IMAGE,
    LABEL_ENVIRONMENT,
    LABEL_HASH,
    LABEL_KIND,
    LABEL_VERSION,
    LOCAL_BASE_PREFIX,
    TAG,
    BuildRecords,
    final_base,
    freeze_from_log,
    image_ref,
    labels_for,
    tar_context,
)
from jupyter_mlws.environments.docker_images import (
    package_version as _default_version,
)
from jupyter_mlws.environments.docker_locks import adopt_lock, build_locked
from jupyter_mlws.environments.docker_wheels import ImageWheels
from jupyter_mlws.environments.dockerfile import build_context_files
from jupyter_mlws.environments.identity import IMAGE_REPOSITORY, image_name
from jupyter_mlws.environments.image_map import (
    DEBIAN_PYTHONS,
    DEFAULT_PYTHON,
    ImageMapping,
    PythonChoice,
    choose_python,
    fallback_allowed,
    map_image,
    python_base,
    python_venv_image,
    rewrite_from_lines,
)
from jupyter_mlws.environments.machine import pip_index_urls
from jupyter_mlws.environments.uv_tool import find_uv, image_uv_environment, use_uv
from jupyter_mlws.environments.wheelhouse import Wheelhouse
from jupyter_mlws.errors import (
    BuildError,
    ConflictError,
    NotFoundError,
    UnsupportedEnvironmentError,
)

__all__ = [
    "LABEL_BASE_ID",
    "LABEL_BASE_IMAGE",
    "LABEL_ENVIRONMENT",
    "LABEL_HASH",
    "LABEL_KIND",
    "LABEL_VERSION",
    "LOCAL_BASE_PREFIX",
    "TAG",
    "DockerBuilder",
    "final_base",
]

Log = Callable[[str], None]


class DockerBuilder:
    """Builds (or adopts) the image of an environment in a Docker engine (a :class:`Builder`).

    ``lock_dir`` holds the per-hash locks, build records and build history. ``registry``
    (``host:port``), when set, is where images are pulled from on a local miss and pushed to
    after a build. ``artifacts`` is the store that holds the snapshots of build contexts.
    """

    name: BuilderName = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        lock_dir: Path,
        registry: str | None = None,
        package_version: str | None = None,
        artifacts: ArtifactStore | None = None,
        build_timeout: int | None = None,
        python_fallback: str | None = None,
        wheelhouse: Path | None = None,
    ) -> None:
        self._client = client
        self.lock_dir = Path(lock_dir)
        self.registry = registry.rstrip("/") if registry else None
        self.package_version = package_version or _default_version()
        self.artifacts = artifacts
        self.build_timeout = build_timeout
        #: The workspace's ``python_fallback`` setting (``MLWS_PYTHON_FALLBACK`` wins over it).
        self.python_fallback = python_fallback
        self.records = BuildRecords(self.lock_dir)
        self._history = BuildHistory(self.lock_dir)
        #: The lock files for rebuilds (:mod:`.docker_wheels`); default: ``wheels`` next to
        #: ``lock_dir`` (the workspace cache's, shared with the venv builder).
        self.wheels = ImageWheels(Wheelhouse(wheelhouse or self.lock_dir.parent / "wheels"),
                                  lambda: self.client)

    # --- engine ------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker_client(ping=False)
        return self._client

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        return calls.inspect(self.client, ref)

    def ping(self) -> None:
        """Raise :class:`DockerUnavailableError` unless the engine answers."""
        with engine_calls():
            self.client.ping()

    # --- lookup ------------------------------------------------------------------------------

    def image_ref(self, spec: EnvironmentSpec) -> str:
        return image_ref(spec.env_hash())

    def lookup(self, spec: EnvironmentSpec, *, env_hash: str | None = None) -> BuildResult | None:
        """The environment's image when it exists (one inspect call), else ``None``.

        With a registry configured, a local miss tries to pull it from there.
        """
        h = env_hash or spec.env_hash()
        ref = image_ref(h)
        info = self._inspect(ref)
        if info is None and self.registry:
            info = self._pull_from_registry(h)
        if info is None:
            return None
        return self.records.result(h, ref, info, spec.kind, cached=True)

    def history(self, env_hash: str) -> list[dict[str, Any]]:
        """Every build of ``env_hash`` with this ``lock_dir``, oldest first."""
        return self._history.entries(env_hash)

    # --- build -------------------------------------------------------------------------------

    def build(
        self,
        spec: EnvironmentSpec,
        *,
        env_name: str = "",
        env_version: str = "",
        log: Log = print,
        refresh_base: bool = False,
        no_cache: bool = False,
        lock_for: LockSource | None = None,
    ) -> BuildResult:
        """The environment's image: found (``cached=True``), adopted or built.

        ``refresh_base`` re-resolves the base (pulling it where a registry answers) and rebuilds
        when it now is another image than the one the cached image was built on. ``no_cache``
        builds every layer afresh (the engine's ``--no-cache``) even when the image exists; the
        new image takes the tag and ``replaced_image_id`` names the one it replaced.
        ``lock_for(series)`` gives the hash's recorded lock, installed exactly (:mod:`.locks`).
        """
        h = spec.env_hash()
        environment = f"{env_name or spec.name}:{env_version or spec.version or ''}"
        with hash_lock(self.lock_dir, h):
            hit = self.lookup(spec, env_hash=h)
            replaced = hit.image_id if hit is not None else None
            if hit is not None and no_cache:
                log(f"Rebuilding {hit.image} ({hit.image_id[:19]}) afresh: no cache asked for")
                hit = None
            if hit is not None and refresh_base and self._base_moved(spec, hit, log):
                hit = None
            if hit is not None:
                return self._cached(hit, environment, log)
            plan = self._plan(spec, log) if spec.kind != "context" else None
            if spec.kind == "image" and plan is None:
                result = self._adopt_image(spec, h, log, refresh=no_cache)
            elif spec.kind in ("managed", "image"):
                result = self._build_locked(spec, h, environment, log, no_cache, plan, lock_for)
            else:
                result = self._build_context(spec, h, environment, log, no_cache)
            result.built_at = utc_now()
            if replaced and replaced != result.image_id:
                result.replaced_image_id = replaced
                calls.remove_replaced(self.client, replaced, log)
            if self.registry:
                self._push(result, log)
            self.records.write(result, environment)
            self._history.add(result, environment=environment, no_cache=no_cache,
                              refresh_base=refresh_base)
            return result

    def _cached(self, hit: BuildResult, environment: str, log: Log) -> BuildResult:
        log(f"Using the cached image {hit.image} ({hit.image_id[:19]})")
        if self.records.read(hit.env_hash).get("image_id") != hit.image_id:
            # Built elsewhere (another lock_dir, a registry): record its packages once.
            hit.resolved_packages = calls.freeze(self.client, hit.image, log, quiet=True)
            self._adopt_lock(hit)
            self.records.write(hit, environment)
        elif hit.lock is None:  # recorded before locks were: the image may keep one
            self._adopt_lock(hit)
            if hit.lock is not None:
                self.records.write(hit, environment)
        return hit

    def _adopt_lock(self, hit: BuildResult) -> None:
        """The lock kept in an image built elsewhere, when its pip step kept one."""
        adopt_lock(hit, calls.read_lock_lines(self.client, hit.image))

    def _base_moved(self, spec: EnvironmentSpec, hit: BuildResult, log: Log) -> bool:
        base_ref = hit.base_image or self._base_ref(spec)
        current = self._refresh_base(base_ref, log) if base_ref else None
        if current is None or not hit.base_image_id or current == hit.base_image_id:
            return False
        log(
            f"The base {base_ref} changed ({hit.base_image_id[:19]} -> {current[:19]}): "
            f"rebuilding {hit.image}"
        )
        return True

    def _labels(
        self, h: str, environment: str, kind: str, base: str | None, base_id: str | None,
        notes: list[str] | None = None,
    ) -> dict[str, str]:
        return labels_for(h, environment, kind, self.package_version, base, base_id, notes)

    def _base_ref(self, spec: EnvironmentSpec) -> str | None:
        return spec.image if spec.kind in ("managed", "image") else None

    def _require_base(self, base: str, log: Log) -> dict[str, Any]:
        """Inspect the base image, pulling it when it is not local; a clear error otherwise."""
        info = self._inspect(base)
        if info is not None:
            return info
        if base in BASE_IMAGES:
            log(f"The base image {base} is not in the Docker engine yet: making it from Debian's "
                "packages (debootstrap; about a minute, once per machine) ...")
            bootstrap_base_images(self.client, [base], log=calls.quiet_debootstrap(log))
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
        error = calls.pull(self.client, base, log)
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

    def _refresh_base(self, base: str, log: Log) -> str | None:
        """Pull ``base`` when it comes from a registry, then its current image id."""
        if not base.startswith(LOCAL_BASE_PREFIX):
            error = calls.pull(self.client, base)
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
        info = self._inspect(image_ref(h))
        if info is None:
            return None
        hit = self.records.result(h, image_ref(h), info, spec.kind, cached=True)
        base = hit.base_image or self._base_ref(spec)
        if not base or not hit.base_image_id:
            return None
        current = self._inspect(base)
        if current is None:
            return None
        return str(current["Id"]) != hit.base_image_id

    # --- the three kinds ---------------------------------------------------------------------

    def _build_managed(
        self, spec: EnvironmentSpec, h: str, environment: str, log: Log, no_cache: bool = False,
        plan: BuildPlan | None = None,
    ) -> BuildResult:
        assert spec.image is not None
        base = plan.base if plan is not None else spec.image
        base_info = self._require_base(base, log)
        labels = self._labels(h, environment, spec.kind, base, str(base_info["Id"]),
                              plan.notes if plan is not None else None)
        # one LABEL step, not one per label
        files = build_context_files(spec, labels=labels, plan=plan)
        t0 = time.monotonic()
        served: contextlib.AbstractContextManager[dict[str, str]] = contextlib.nullcontext({})
        if plan is not None and plan.locked:
            # a lock's exact files: uv installs them when the host has it (MLWS_BUILD_TOOL=pip
            # keeps pip); an explicit uv build copies its own binary (dockerfile._uv_lines)
            uv = find_uv() if plan.uv_binary is None and use_uv(default=True) else None
            served = self.wheels.serve(  # (bytecode: only the pip step unpacks it)
                plan.requirements, log, installer=uv,
                series=plan.python.version if plan.uv_binary is None else None)
        with served as buildargs:  # the lock's files from this machine (docker_wheels)
            text = calls.run_build(
                self.client, environment, log, labels=None, timeout=self.build_timeout,
                fileobj=tar_context(files), custom_context=True, dockerfile="Dockerfile",
                nocache=no_cache, tag=image_ref(h), buildargs=buildargs,
            )
        return self._finish(spec, h, base_info, t0, log, base_ref=base, text=text,
                            notes=plan.notes if plan is not None else [])

    def _build_locked(
        self, spec: EnvironmentSpec, h: str, environment: str, log: Log, no_cache: bool,
        plan: BuildPlan | None, lock_for: LockSource | None,
    ) -> BuildResult:
        """A managed build; from the recorded lock when there is one (see :mod:`.docker_locks`).

        A base that is not mapped (any other image) keys its lock as ``image``: the hash names
        the image, so its Python."""
        if plan is None and spec.kind == "managed" and spec.pip_packages() and not spec.conda_file:
            assert spec.image is not None
            plan = BuildPlan(None, PythonChoice("image"), spec.image, spec.pip_packages())
        if plan is not None and use_uv(default=False):  # opt-in: MLWS_BUILD_TOOL=uv
            plan.uv_binary, plan.uv_env = find_uv(), image_uv_environment()
        return self.wheels.filled(  # keeps the lock's files for rebuilds (docker_wheels)
            lambda lg: build_locked(lambda: self._build_managed(spec, h, environment, lg, no_cache,
                                                                plan), h, environment, log, plan,
                                    lock_for), plan.base if plan is not None else "", log)

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
            notes = self._map_from_lines(dockerfile, log)
            base = final_base(dockerfile.read_text(encoding="utf-8", errors="replace"))
            real_base = base is not None and base.lower() != "scratch"
            base_info = None
            if base is not None and real_base:
                if base.startswith(LOCAL_BASE_PREFIX):
                    base_info = self._require_base(base, log)
                else:
                    base_info = self._inspect(base)  # else the engine pulls it while building
            labels = self._labels(
                h, environment, "context", base, str(base_info["Id"]) if base_info else None,
                notes,
            )
            t0 = time.monotonic()
            text = calls.run_build(
                self.client, environment, log, labels=labels, timeout=self.build_timeout,
                path=str(tmp), dockerfile=spec.build.dockerfile_path, nocache=no_cache,
                tag=image_ref(h),
            )
            if base_info is None and base is not None and real_base:
                base_info = self._inspect(base)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self._finish(spec, h, base_info, t0, log, base_ref=base, text=text, notes=notes)

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

    def _adopt_image(
        self, spec: EnvironmentSpec, h: str, log: Log, *, refresh: bool = False
    ) -> BuildResult:
        """A ready image: pull it when missing (or ``refresh``), then tag it as the environment's."""
        assert spec.image is not None
        ref = spec.image
        t0 = time.monotonic()
        if refresh:
            self._refresh_base(ref, log)
        info = self._inspect(ref)
        if info is None:
            log(f"Pulling {ref} ...")
            error = calls.pull(self.client, ref, log)
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
        with engine_calls():
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
        notes: list[str] | None = None,
    ) -> BuildResult:
        ref = image_ref(h)
        seconds = time.monotonic() - t0
        info = self._inspect(ref)
        if info is None:
            raise BuildError(f"The build finished but {ref} is not in the engine.")
        packages = freeze_from_log(text)
        if packages is None or (spec.kind == "managed" and spec.conda_packages() and not notes):
            packages = calls.freeze(self.client, ref, log, quiet=tolerate_no_python)
        base_digests = (base_info or {}).get("RepoDigests") or []
        result = self.records.result(h, ref, info, spec.kind, cached=False)
        result.build_seconds = round(seconds, 3)
        result.log = text
        result.resolved_packages = packages
        result.base_image = base_ref
        result.base_image_id = str(base_info["Id"]) if base_info else result.base_image_id
        result.base_digest = base_digests[0] if base_digests else None
        result.replaced_image_id = None
        result.notes = list(notes or [])
        if spec.kind == "image" and not notes:
            result.digest = result.base_digest
        return result

    # --- Python images mapped to offline bases (image_map, build_plan) -------------------------

    def _plan(self, spec: EnvironmentSpec, log: Log) -> BuildPlan | None:
        """The offline plan of a managed/image environment whose image is mapped, else None."""
        mapping = map_image(spec.image)
        if mapping is None or (spec.kind == "image" and mapping.local):
            return None
        plan = plan_build(spec, allow_nearest=fallback_allowed(self.python_fallback))
        if plan.translation is not None:
            urls = pip_index_urls()
            check_index(plan, urls[0] if urls else None)
        for note in plan.notes:
            log(f"note: {note}")
        return plan

    def _map_from_lines(self, dockerfile: Path, log: Log) -> list[str]:
        """Rewrite ``FROM python:3.x`` (and other mapped images) in a materialized context to the
        offline base with a venv, making it when missing; the notes of what was replaced."""
        allow = fallback_allowed(self.python_fallback)

        def replace(mapping: ImageMapping) -> str:
            asked = f"python={mapping.python}" if mapping.python else None
            choice = choose_python(asked, list(DEBIAN_PYTHONS), default=DEFAULT_PYTHON,
                                   allow_nearest=allow, where="this machine's offline bases")
            return self._ensure_venv_image(choice.version, log)

        text = dockerfile.read_text(encoding="utf-8", errors="replace")
        new, done = rewrite_from_lines(text, replace)
        if not done:
            return []
        dockerfile.write_text(new, encoding="utf-8")
        notes = []
        for mapping, image in done:
            notes.append(f"FROM {mapping.image} ({mapping.origin}) -> FROM {image}")
            if mapping.note:
                notes.append(f"image {mapping.image}: {mapping.note}")
        for note in notes:
            log(f"note: {note}")
        return notes

    def _ensure_venv_image(self, series: str, log: Log) -> str:
        """The offline base of ``series`` with a venv first on PATH (Docker Hub's python images
        have a working ``pip``); built once from the base, again when the base changes."""
        name, base = python_venv_image(series), python_base(series)
        with hash_lock(self.lock_dir, f"venv-image-{series}"):
            base_id = str(self._require_base(base, log)["Id"])
            info = self._inspect(name)
            if info is not None and ((info.get("Config") or {}).get("Labels") or {}).get(
                    LABEL_BASE_ID) == base_id:
                return name
            log(f"Making {name} (the base {base} with a venv, as Docker Hub's python images) ...")
            snippet = PIP_CA_DOCKERFILE_SNIPPET
            files = {}
            if HOST_CA_BUNDLE.is_file():
                files["mlws-host-ca.crt"] = HOST_CA_BUNDLE.read_bytes()
            else:
                snippet = "\n".join(ln for ln in snippet.splitlines()
                                    if "host-ca" not in ln and "PIP_CERT" not in ln) + "\n"
            files["Dockerfile"] = (f"FROM {base}\n{snippet}"
                                   f'LABEL {LABEL_BASE_ID}="{base_id}" {LABEL_BASE_IMAGE}="{base}"\n'
                                   ).encode()
            calls.run_build(self.client, name, log, labels=None, timeout=self.build_timeout,
                            fileobj=tar_context(files), custom_context=True,
                            dockerfile="Dockerfile", tag=name)
            return name

    # --- registry ----------------------------------------------------------------------------

    def _pull_from_registry(self, h: str) -> dict[str, Any] | None:
        assert self.registry
        remote = f"{self.registry}/{image_name(h)}"
        if calls.pull(self.client, f"{remote}:{TAG}") is not None:
            return None
        info = self._inspect(f"{remote}:{TAG}")
        if info is None:
            return None
        with engine_calls():
            self.client.api.tag(info["Id"], image_name(h), TAG, force=True)
        return self._inspect(image_ref(h))

    def _push(self, result: BuildResult, log: Log) -> None:
        assert self.registry
        remote = f"{self.registry}/{image_name(result.env_hash)}"
        digest = calls.push(self.client, result.image_id, remote, log)
        if digest:
            result.digest = digest

    # --- housekeeping ------------------------------------------------------------------------

    def images(self) -> list[dict[str, Any]]:
        """Every ``mlws/mlws_*`` image: id, tags, size, created, labels."""
        return calls.list_images(self.client, IMAGE_REPOSITORY)

    def remove(self, image_ref: str, *, force: bool = False) -> None:
        """Remove an image (or, for a ready image adopted by tag, just that tag)."""
        with engine_calls():
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
