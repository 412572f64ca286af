"""``ws.environments``: definitions identified by the hash of what goes into their image."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_mlws.artifacts import PutSession
from jupyter_mlws.assets.base import is_reserved, refuse_reserved
from jupyter_mlws.assets.environment import Environment, EnvironmentSpec, parse_environment_text
from jupyter_mlws.assets.yaml_io import validate_spec
from jupyter_mlws.environments.builders import builder_name
from jupyter_mlws.environments.builds import BuildResult
from jupyter_mlws.environments.identity import dockerignore_spec, image_name
from jupyter_mlws.environments.locks import lock_index_key, lock_meta_key, lock_record
from jupyter_mlws.errors import (
    AssetNotFoundError,
    MlwsError,
    NoLockError,
    SpecError,
    ValidationError,
)
from jupyter_mlws.operations.base import AssetOperations, Prepared

if TYPE_CHECKING:
    from jupyter_mlws.environments.builders import Builder
    from jupyter_mlws.environments.docker_builder import DockerBuilder

Log = Callable[[str], None]

ANONYMOUS_PREFIX = "anon_"


class EnvironmentOperations(AssetOperations[EnvironmentSpec, Environment]):
    kind = "environment"
    spec_class = EnvironmentSpec

    def __init__(self, workspace: Any) -> None:
        super().__init__(workspace)
        self._allow_reserved = False

    # --- creating ----------------------------------------------------------------------------------

    def create(
        self,
        name: str | None = None,
        *,
        image: str | None = None,
        conda_file: dict[str, Any] | str | Path | None = None,
        pip_requirements: list[str] | str | None = None,
        docker_steps: list[str] | str | None = None,
        build: dict[str, Any] | None = None,
        environment_variables: dict[str, str] | None = None,
        version: str | int | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        from_: str | None = None,
        spec: EnvironmentSpec | None = None,
    ) -> Environment:
        """Register an environment definition; the identical latest version is reused.

        ``from_`` copies an existing environment (e.g. a curated ``MLWS-`` one) under ``name``.
        """
        if spec is None:
            if from_ is not None:
                source = self.get(from_).definition()
                data: dict[str, Any] = source.model_dump(
                    exclude={"name", "version", "description", "tags"}, exclude_none=True
                )
                data.update(description=source.description, tags=dict(source.tags))
            else:
                data = {
                    "image": image,
                    "pip_requirements": pip_requirements,
                    "docker_steps": docker_steps,
                    "build": build,
                    "environment_variables": environment_variables,
                    "conda_file": conda_file,
                }
                data = self._prepare_yaml(
                    {k: v for k, v in data.items() if v is not None}, Path.cwd(), "<arguments>"
                )
            data.update(
                {k: v for k, v in {"name": name, "version": version, "description": description,
                                   "tags": tags}.items() if v is not None}
            )
            spec = validate_spec(EnvironmentSpec, data)
        return self.register(spec)

    def create_from_text(
        self, name: str, text: str, *, fmt: str | None = None, image: str | None = None, **kw: Any
    ) -> Environment:
        """Register from a conda YAML, a requirements list or a Dockerfile (as ``%%environment``)."""
        fields = parse_environment_text(text, fmt)
        if image and "image" not in fields:
            fields["image"] = image
        elif image and fields.get("image") != image:
            raise ValidationError("--image conflicts with the Dockerfile's FROM line.")
        data = {"name": name, **fields, **{k: v for k, v in kw.items() if v is not None}}
        return self.register(validate_spec(EnvironmentSpec, data))

    def _prepare_yaml(self, data: dict[str, Any], base_dir: Path, source: str) -> dict[str, Any]:
        conda = data.get("conda_file")
        if isinstance(conda, Path):
            data["conda_file"] = str(conda)
        return EnvironmentSpec.prepare_yaml(data, base_dir, source)

    def _check_name(self, spec: EnvironmentSpec) -> None:
        if not self._allow_reserved:
            refuse_reserved(spec.name)

    def _prepare(self, spec: EnvironmentSpec, session: PutSession) -> Prepared:
        if spec.build is not None and spec.build.files is None:
            self._snapshot_context(spec, session)
        env_hash = spec.env_hash()
        return Prepared(
            spec=spec.content(),
            env_hash=env_hash,
            hidden=spec.name.startswith(ANONYMOUS_PREFIX),
            curated=is_reserved(spec.name),
            reuse_identical_latest=True,
        )

    def _snapshot_context(self, spec: EnvironmentSpec, session: PutSession) -> None:
        assert spec.build is not None
        if not spec.build.path:
            raise SpecError("a build context needs 'path'", field="build.path")
        folder = Path(spec.build.path)
        if not folder.is_dir():
            raise SpecError(f"the build context {str(folder)!r} is not a folder", field="build.path")
        if not (folder / spec.build.dockerfile_path).is_file():
            raise SpecError(
                f"no {spec.build.dockerfile_path} in the build context {str(folder)!r}",
                field="build.dockerfile_path",
            )
        ignore = dockerignore_spec(folder)
        stored = self._ws.artifacts.put_path(folder, ignore=ignore, session=session)
        spec.build.tree_sha256 = stored.sha256
        spec.build.files = [
            (rel, sha) for rel, sha, _n, _x in self._ws.artifacts.manifest(stored.sha256)
        ]

    def register_anonymous(self, definition: EnvironmentSpec | dict[str, Any]) -> Environment:
        """Register an inline definition under a name made from its hash, hidden from lists."""
        data = (
            definition.model_dump(exclude={"name", "version"}, exclude_none=True)
            if isinstance(definition, EnvironmentSpec)
            else {k: v for k, v in definition.items() if k not in ("name", "version")}
        )
        probe = validate_spec(EnvironmentSpec, {**data, "name": "probe"})
        with self._ws.artifacts.session() as session:  # context blobs pinned until registered
            if probe.build is not None and probe.build.files is None:
                self._snapshot_context(probe, session=session)
                data = probe.model_dump(exclude={"name", "version"}, exclude_none=True)
            name = ANONYMOUS_PREFIX + probe.env_hash()[:32]
            return self.register(validate_spec(EnvironmentSpec, {**data, "name": name}))

    # --- reading ---------------------------------------------------------------------------------

    def get_by_hash(self, env_hash: str) -> Environment:
        """The first version registered with this hash (a prefix of 8 or more hex digits works)."""
        text = env_hash.lower().removeprefix(image_name("")).strip()
        if len(text) < 8 or any(c not in "0123456789abcdef" for c in text):
            raise ValidationError(f"{env_hash!r} is not an environment hash (8+ hex digits).")
        found = self._store.find_by_env_hash(text)
        if not found:
            raise AssetNotFoundError(f"No environment has the hash {text}.")
        return found[0]  # type: ignore[return-value]

    def diff(self, name: str, v1: str | int, v2: str | int) -> dict[str, Any]:
        """What changed between two versions, and whether the hash (so the image) changes."""
        a = self.get(name, v1).definition()
        b = self.get(name, v2).definition()
        ha, hb = a.env_hash(), b.env_hash()
        changes: list[dict[str, Any]] = []

        def compare(field: str, x: Any, y: Any) -> None:
            if x != y:
                changes.append({"field": field, "from": x, "to": y})

        compare("image", a.image, b.image)
        compare("build", _build_view(a), _build_view(b))
        compare("docker_steps", a.docker_steps, b.docker_steps)
        pa, pb = a.pip_packages(), b.pip_packages()
        ca, cb = a.conda_packages(), b.conda_packages()
        compare("conda_channels", (a.conda_file or {}).get("channels"),
                (b.conda_file or {}).get("channels"))
        compare("environment_variables", a.environment_variables, b.environment_variables)
        return {
            "name": name,
            "from_version": str(v1),
            "to_version": str(v2),
            "hash_from": ha,
            "hash_to": hb,
            "hash_changed": ha != hb,
            "image_from": image_name(ha),
            "image_to": image_name(hb),
            "pip": _list_diff(pa, pb),
            "conda": _list_diff(ca, cb),
            "changes": changes,
        }

    # --- builds ----------------------------------------------------------------------------------

    def builder(self, kind: str = "docker") -> Builder:
        """The builder named ``kind``: ``docker`` (images) or ``venv`` (virtualenvs)."""
        builder: Builder = self._ws.builder(builder_name(kind))
        return builder

    def _docker(self) -> DockerBuilder:
        """The Docker builder, for what only images have (listing, removing)."""
        docker_builder: DockerBuilder = self._ws.builder("docker")
        return docker_builder

    def lookup(self, env: Environment, builder: str = "docker") -> BuildResult | None:
        """The built image/venv of ``env`` when it exists (milliseconds), else ``None``."""
        return self.builder(builder).lookup(env.definition())

    def build(
        self,
        name: str | Environment,
        version: str | int | None = None,
        *,
        builder: str = "docker",
        log: Log | None = None,
        refresh_base: bool = False,
        no_cache: bool = False,
    ) -> BuildResult:
        """Build ``name:version`` (or reuse its cached image/venv); the log is recorded.

        ``builder`` is ``docker`` (an image ``mlws/mlws_<hash>``) or ``venv``. ``no_cache``
        builds afresh even when the image/venv exists (the new one replaces it; both builds are
        in :meth:`build_history`). ``refresh_base`` rebuilds when the base moved.
        """
        target = self.builder(builder)
        env = name if isinstance(name, Environment) else self.get(name, version)
        spec = env.definition()
        h = spec.env_hash()
        lines: list[str] = []

        def emit(line: str) -> None:
            lines.append(line)
            if log is not None:
                log(line)

        if not (refresh_base or no_cache):
            fast = self._recorded_hit(target, spec, h)
            if fast is not None:
                emit(f"Using the cached {'image' if target.name == 'docker' else 'venv'} "
                     f"{fast.image}")
                return fast
        self._store.record_build(h, target.name, status="building", environment=env.ref)
        try:
            result = target.build(spec, env_name=env.name, env_version=env.version, log=emit,
                                  refresh_base=refresh_base, no_cache=no_cache,
                                  lock_for=lambda series: self.lock_text(h, series))
        except BaseException as exc:
            reason = str(exc) if isinstance(exc, MlwsError) else f"{type(exc).__name__}: {exc}"
            self._store.record_build(h, target.name, status="failed", log="\n".join(lines),
                                     error=reason)
            raise
        self._keep_lock(h, target.name, result)
        full_log = result.log or "\n".join(lines)
        record = result.to_dict()
        record.pop("log", None)
        self._store.record_build(h, target.name, status="succeeded", result=record, log=full_log)
        if target.name == "docker":
            self._image_users().add(h, self._ws.path)
        return result

    def _image_users(self) -> Any:
        from jupyter_mlws.environments.image_users import ImageUsers

        return ImageUsers(self._ws.cache_dir / "image-users")

    # --- locks ------------------------------------------------------------------------------------

    def lock_text(self, env_hash: str, python: str) -> str | None:
        """The recorded lock of ``env_hash`` for the Python series ``python``, else ``None``."""
        raw = self._store.get_meta(lock_meta_key(env_hash, python))
        data = json.loads(raw) if raw else {}
        return str(data["lock"]) if data.get("env_hash") == env_hash else None

    def lock_pythons(self, env_hash: str) -> list[str]:
        """The Python series ``env_hash`` has a lock for, first recorded first."""
        raw = self._store.get_meta(lock_index_key(env_hash))
        return list(json.loads(raw)) if raw else []

    def set_lock(self, env_hash: str, python: str, text: str, *, builder: str) -> None:
        """Record ``text`` as the lock of ``env_hash`` on ``python`` (replacing none silently:
        callers check first; a registry import and the first build record it)."""
        self._store.set_meta(lock_meta_key(env_hash, python),
                             lock_record(text, builder=builder, env_hash=env_hash, python=python))
        known = self.lock_pythons(env_hash)
        if python not in known:
            self._store.set_meta(lock_index_key(env_hash), json.dumps([*known, python]))

    def _keep_lock(self, env_hash: str, builder: str, result: BuildResult) -> None:
        """Record the lock a build resolved (or an image/venv found built holds), when the hash
        has none for its Python here."""
        if not result.lock or not result.lock_python:
            return
        if self.lock_text(env_hash, result.lock_python) is None:
            self.set_lock(env_hash, result.lock_python, result.lock, builder=builder)

    def lock(self, name: str | Environment, version: str | int | None = None, *,
             python: str | None = None) -> str:
        """The lock of ``name:version`` (pip ``--require-hashes`` requirements).

        ``python`` picks the series when the hash was built on more than one.

        Raises:
            NoLockError: it was never built (nor imported with a lock) here.
        """
        env = name if isinstance(name, Environment) else self.get(name, version)
        series = [python] if python else self.lock_pythons(env.env_hash)
        for one in series:
            text = self.lock_text(env.env_hash, one)
            if text:
                return text
        raise NoLockError(
            f"The environment {env.ref} has no lock yet" + (f" for Python {python}" if python
                                                             else "") + ".",
            hint=f"Build it once (`mlws env build {env.ref}`); its first build records the lock.",
        )

    def update_lock(self, name: str, version: str | int | None = None, *,
                    packages: list[str] | None = None) -> Environment:
        """Re-resolve ``name:version`` on purpose and register the result as a NEW version.

        ``packages`` move to their newest allowed releases, the rest stay as locked (all move
        when none are named). The new version pins every resolved package (a new hash, so a new
        lock); the old version and its lock are untouched. See :mod:`.lock_update`.
        """
        from jupyter_mlws.environments import lock_update as lu
        from jupyter_mlws.environments.locks import parse_lock

        env = self.get(name, version)
        spec = env.definition()
        if spec.kind != "managed" or spec.conda_file:
            raise ValidationError(
                f"{env.ref} is not a pip-only environment; its lock cannot be updated here.",
                hint="Change its definition (a new version) instead.")
        original = lu.original_requirements(dict(env.tags), spec.pip_packages())
        try:
            old = parse_lock(self.lock(env))
        except NoLockError:
            old = None
        unknown = [p for p in packages or []
                   if old is not None and p.lower().replace("_", "-") not in old.pins()]
        if unknown:
            raise ValidationError(f"{', '.join(unknown)} is not in the lock of {env.ref}.",
                                  hint=f"See `mlws env lock {env.ref}`.")
        pins = lu.updated_requirements(original, old, list(packages or []))
        data = spec.model_dump(exclude={"version"}, exclude_none=True)
        data["pip_requirements"] = pins
        data["tags"] = {**env.tags, lu.TAG_REQUIREMENTS: json.dumps(original),
                        lu.TAG_FROM: env.ref}
        return self.register(validate_spec(EnvironmentSpec, data))

    # --- bases over time ----------------------------------------------------------------------

    def outdated(self) -> list[dict[str, Any]]:
        """Environment versions whose image was built on a base id that is no longer its tag's
        current id (a patched or retagged base), with the jobs, models and deployments using
        them. See :mod:`jupyter_mlws.environments.outdated`."""
        from jupyter_mlws.environments.outdated import find_outdated

        return find_outdated(self._ws, self._docker().client)

    def base_note(self, env: Environment) -> str | None:
        """"base patched on DATE; rebuild available" when ``env``'s image was built on a base
        its tag no longer points at (another line for a moved tag not made by a patch)."""
        try:
            builder = self._docker()
            if not builder.base_changed(env.definition()):
                return None
            hit = builder.lookup(env.definition())
            info = builder._inspect(hit.base_image) if hit and hit.base_image else None
        except Exception:  # noqa: BLE001 - no engine: nothing to say
            return None
        labels = ((info or {}).get("Config") or {}).get("Labels") or {}
        patched = labels.get("org.mlws.patched")
        if patched:
            return (f"base patched on {patched[:10]}; rebuild available: "
                    f"`mlws env rebuild {env.ref}`")
        return ("the base image's tag now points elsewhere: "
                f"`mlws env rebuild {env.ref}` rebuilds on it from the lock")

    def rebuild(self, name: str | Environment, version: str | int | None = None, *,
                log: Log | None = None, redeploy: bool = False) -> dict[str, Any]:
        """Rebuild ``name:version``'s image on its base's current image, installing its lock
        (so only the base layers change); the build history keeps the image it replaces.

        ``redeploy`` rolls every online deployment serving it (a rolling update: the old
        replicas serve until the new ones are ready). A lock that no longer installs raises
        :class:`~jupyter_mlws.errors.LockInstallError` and the old image stays in service.
        """
        env = name if isinstance(name, Environment) else self.get(name, version)
        before = self.build_record(env)
        old_id = ((before or {}).get("result") or {}).get("image_id")
        result = self.build(env, builder="docker", log=log, refresh_base=True)
        out: dict[str, Any] = {"environment": env.ref, "env_hash": env.env_hash,
               "old_image_id": old_id,
               "image_id": result.image_id, "base_image_id": result.base_image_id,
               "rebuilt": result.image_id != old_id, "from_lock": result.from_lock,
               "redeployed": []}
        if redeploy and out["rebuilt"]:
            out["redeployed"] = self._redeploy(env.env_hash, log)
        return out

    def rebuild_outdated(self, *, log: Log | None = None,
                         redeploy: bool = False) -> list[dict[str, Any]]:
        """:meth:`rebuild` every version :meth:`outdated` lists (each hash once)."""
        done: dict[str, dict[str, Any]] = {}
        for item in self.outdated():
            if item["env_hash"] not in done:
                done[item["env_hash"]] = self.rebuild(item["name"], item["version"], log=log,
                                                      redeploy=redeploy)
        return list(done.values())

    def _redeploy(self, env_hash: str, log: Log | None) -> list[str]:
        """Roll every Docker-runtime deployment serving ``env_hash`` to its rebuilt image, with
        the code, model and environment it serves now (see :func:`.outdated.redeploy_spec`)."""
        from jupyter_mlws.environments.outdated import deployment_specs, redeploy_spec

        rolled = []
        for endpoint, name, spec, resolved in deployment_specs(self._ws, env_hash):
            if log is not None:
                log(f"Rolling {endpoint}/{name} to the rebuilt image ...")
            self._ws.endpoints.update_deployment(redeploy_spec(spec, resolved), log=log)
            rolled.append(f"{endpoint}/{name}")
        return rolled

    def _recorded_hit(self, target: Builder, spec: EnvironmentSpec, h: str) -> BuildResult | None:
        """The existing image/venv when this workspace recorded its build (no builder lock)."""
        fast = target.lookup(spec, env_hash=h)
        known = self._store.get_build(h, target.name) if fast is not None else None
        if fast is None or known is None or known["status"] != "succeeded":
            return None
        result = known.get("result") or {}
        if result.get("image_id") != fast.image_id:
            return None
        fast.resolved_packages = result.get("resolved_packages") or []
        return fast

    def build_history(self, env: Environment, builder: str = "docker") -> list[dict[str, Any]]:
        """Every build of ``env``'s hash on this machine with ``builder``, oldest first."""
        return self.builder(builder).history(env.env_hash)

    def build_record(self, env: Environment, builder: str = "docker") -> dict[str, Any] | None:
        """The last recorded build of ``env``'s hash (status, result, full log)."""
        return self._store.get_build(env.env_hash, builder)

    def logs(self, name: str, version: str | int | None = None, *,
             builder: str = "docker") -> str:
        env = self.get(name, version)
        record = self._store.get_build(env.env_hash, builder)
        if record is None:
            raise AssetNotFoundError(
                f"environment {env.ref} has not been built with {builder} in this workspace.",
                hint=f"Build it: `mlws env build {env.ref}`.",
            )
        return str(record.get("log") or "")

    def images(self) -> list[dict[str, Any]]:
        """Built ``mlws/mlws_*`` images, with their size and the versions that use them."""
        users: dict[str, list[str]] = {}
        for env in self.list(include_archived=True, include_hidden=True):
            for version in self.list(env.name, include_archived=True):
                users.setdefault(version.env_hash, []).append(
                    version.ref + (" (archived)" if version.archived else ""))
        out = []
        for image in self._docker().images():
            labels = image.get("labels") or {}
            h = labels.get("org.mlws.hash", "")
            out.append({**image, "repository": (image.get("tags") or [image["id"][7:19]])[0],
                        "env_hash": h, "used_by": users.get(h, [])})
        return out

    def prune(self, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Remove images that no registered, non-archived environment version uses, here or
        in another workspace of this machine that recorded it (see
        :mod:`jupyter_mlws.environments.image_users`)."""
        keep = {v.env_hash for e in self.list(include_hidden=True) for v in self.list(e.name)}
        users = self._image_users()
        removed = []
        docker_builder = self._docker()
        for image in self.images():
            h = image["env_hash"]
            if not h or h in keep or users.others(h, self._ws.path):
                continue
            if not dry_run:
                docker_builder.remove(image["id"], force=True)
                users.forget(h)
            removed.append(image)
        return removed

    def clear_wheelhouse(self, *, dry_run: bool = False) -> tuple[int, int]:
        """Empty the wheelhouse (package files kept by sha256 for rebuilds from locks, see
        :mod:`jupyter_mlws.environments.wheelhouse`, and their bytecode cache, see
        :mod:`jupyter_mlws.environments.pyc_cache`); ``(files, bytes)`` removed."""
        house = self.builder("venv").wheelhouse  # type: ignore[attr-defined]
        return house.size() if dry_run else house.clear()

    def sync_curated(self) -> int:
        """Register the curated catalog shipped with the package (idempotent)."""
        from jupyter_mlws.environments.curated import catalog

        added = 0
        self._allow_reserved = True
        try:
            for data in catalog():
                env = self.register(validate_spec(EnvironmentSpec, data))
                added += int(env.curated)
        finally:
            self._allow_reserved = False
        return added


def _build_view(spec: EnvironmentSpec) -> Any:
    if spec.build is None:
        return None
    return {"dockerfile_path": spec.build.dockerfile_path, "files": spec.build.files}


def _list_diff(a: list[str], b: list[str]) -> dict[str, Any]:
    def key(req: str) -> str:
        import re

        m = re.match(r"[A-Za-z0-9][A-Za-z0-9._\-]*", req)
        return m.group(0).lower() if m else req

    ka = {key(x): x for x in a}
    kb = {key(x): x for x in b}
    return {
        "added": [kb[k] for k in kb if k not in ka],
        "removed": [ka[k] for k in ka if k not in kb],
        "changed": [{"from": ka[k], "to": kb[k]} for k in ka if k in kb and ka[k] != kb[k]],
        "reordered": [key(x) for x in a if key(x) in kb] != [key(x) for x in b if key(x) in ka],
    }
