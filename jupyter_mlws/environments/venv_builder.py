"""Materialize an environment as a local virtualenv (for the local compute; no Docker).

A venv lives at ``root/<full hash>``. It is built in a temporary sibling folder and renamed into
place, with a completion marker written last inside it, so a failed or interrupted build leaves
nothing that looks finished. ``uv`` is used when it is on ``PATH``, else ``python -m venv`` and
pip. Only what a venv can honour is accepted: pip packages, a conda file (translated to PyPI, see
:mod:`.conda_pypi`) and a Python version - a plain Python image (``python:3.9``) means "a venv
of that Python" (see :meth:`VenvMaterializer.plan`). Docker steps, build contexts and other
ready images are refused with a message saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from filelock import Timeout

from jupyter_mlws.assets.environment import DEFAULT_BASE_IMAGE, EnvironmentSpec
from jupyter_mlws.crypto import without_secret_key
from jupyter_mlws.environments import wheel_install
from jupyter_mlws.environments.build_plan import BuildPlan, check_index, plan_build
from jupyter_mlws.environments.builds import (
    BuilderName,
    BuildHistory,
    BuildResult,
    LockSource,
    hash_lock,
    tail,
    utc_now,
)
from jupyter_mlws.environments.dockerfile import python_version_of
from jupyter_mlws.environments.image_map import fallback_allowed, map_image
from jupyter_mlws.environments.locks import (
    lock_failure,
    lock_lines_from_report,
    parse_lock,
    render_lock,
)
from jupyter_mlws.environments.machine import pip_index_urls
from jupyter_mlws.environments.pyc_cache import (
    BytecodeSummary,
    compile_in_background,
    compile_venv,
    wait_for_bytecode,
)
from jupyter_mlws.environments.uv_tool import (
    BUILD_TOOL_ENV,
    compiled_lock_lines,
    find_uv,
    uv_environment,
)
from jupyter_mlws.environments.wheelhouse import Wheelhouse
from jupyter_mlws.errors import (
    BuildError,
    PythonUnavailableError,
    UnsupportedEnvironmentError,
    ValidationError,
)

MARKER = ".mlws-venv.json"
REQUIREMENTS = "mlws-requirements.txt"
_TMP_PREFIX = ".tmp-"
#: What ``pip freeze`` leaves out (uv's freeze lists them; ``uv venv --seed`` installs pip).
_SEEDED = {"pip", "setuptools", "wheel", "distribute"}
_BIN = "Scripts" if os.name == "nt" else "bin"
#: When a venv's packages are byte-compiled: ``background`` (the default: the build returns
#: once they are installed, a pass of its own compiles them, see :mod:`.pyc_cache`) or
#: ``build`` (before the build returns).
BYTECODE_ENV = "MLWS_VENV_BYTECODE"
_BYTECODE_MODES = ("background", "build")
#: How long a rebuild or a removal waits for the old venv's bytecode pass to end.
_PASS_WAIT_S = 120.0

Log = Callable[[str], None]


def bytecode_in_background() -> bool:
    """Whether venv builds leave their packages' bytecode to a background pass
    (:data:`BYTECODE_ENV`)."""
    mode = os.environ.get(BYTECODE_ENV, "").strip().lower() or "background"
    if mode not in _BYTECODE_MODES:
        raise ValidationError(
            f"{BYTECODE_ENV}={mode!r} is not a bytecode mode.",
            hint=f"Use one of {', '.join(_BYTECODE_MODES)} (or unset it: background).")
    return mode == "background"


def venv_python(path: Path) -> Path:
    """The interpreter of the venv at ``path``."""
    return path / _BIN / ("python.exe" if os.name == "nt" else "python")


class VenvMaterializer:
    """Builds and finds the venv of an environment under ``root`` (e.g. ``~/.mlws/envs``).

    A :class:`~jupyter_mlws.environments.builders.Builder`; its base is the interpreter.
    """

    name: BuilderName = "venv"

    def __init__(
        self,
        root: Path,
        *,
        lock_dir: Path | None = None,
        python: str | None = None,
        use_uv: bool | None = None,
        python_fallback: str | None = None,
        wheelhouse: Path | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.lock_dir = Path(lock_dir) if lock_dir else self.root / ".locks"
        #: Files pip builds installed, by sha256 (see :mod:`.wheelhouse`); shared.
        self.wheelhouse = Wheelhouse(wheelhouse or self.root / ".wheels")
        self.python = python or sys.executable
        if use_uv is None and os.environ.get(BUILD_TOOL_ENV):
            use_uv = os.environ[BUILD_TOOL_ENV].strip().lower() == "uv"
        self.uv = find_uv() if use_uv is not False else None
        if use_uv and self.uv is None:
            raise UnsupportedEnvironmentError("uv was asked for but is not on PATH.")
        self._history = BuildHistory(self.lock_dir)
        #: The workspace's ``python_fallback`` setting (``MLWS_PYTHON_FALLBACK`` wins over it).
        self.python_fallback = python_fallback

    def path_for(self, spec: EnvironmentSpec, *, env_hash: str | None = None) -> Path:
        return self.root / (env_hash or spec.env_hash())

    def lookup(self, spec: EnvironmentSpec, *, env_hash: str | None = None) -> BuildResult | None:
        """The finished venv of ``spec`` (its marker exists), else ``None``; one small read."""
        path = self.path_for(spec, env_hash=env_hash)
        try:
            data = json.loads((path / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        result = BuildResult.from_dict(data)
        result.cached = True
        result.build_seconds = 0.0
        result.log = ""
        return result

    def history(self, env_hash: str) -> list[dict[str, Any]]:
        """Every build of ``env_hash`` under this ``lock_dir``, oldest first."""
        return self._history.entries(env_hash)

    # --- what a venv can hold ----------------------------------------------------------------

    def check(self, spec: EnvironmentSpec) -> str | None:
        """Raise :class:`UnsupportedEnvironmentError` unless a venv can hold ``spec``.

        Returns the interpreter (a path, or a version uv provides) to make the venv with, or
        ``None`` for the running interpreter.
        """
        return self.plan(spec)[0]

    def plan(self, spec: EnvironmentSpec) -> tuple[str | None, BuildPlan]:
        """``(interpreter or None, plan)``: what the venv of ``spec`` is made from.

        A plain Python image (``python:3.9``, Azure's ``minimal-...-py39``) means a venv of
        that Python: the running interpreter, a ``python3.X`` on PATH, or one uv provides; else
        the fallback rule (``python_fallback``) applies. Conda files are translated to PyPI.
        """
        who = f"The environment {spec.name!r}"
        docker_hint = "Run it on a Docker compute target instead (its image is built from it)."
        if spec.kind == "context":
            raise UnsupportedEnvironmentError(
                f"{who} is a Docker build context; a venv cannot be made from it.", hint=docker_hint
            )
        if spec.kind == "image" and map_image(spec.image) is None:
            raise UnsupportedEnvironmentError(
                f"{who} is the ready Docker image {spec.image}; a venv cannot be made from it.",
                hint=docker_hint,
            )
        if spec.docker_steps:
            raise UnsupportedEnvironmentError(
                f"{who} has Docker steps ({spec.docker_steps[0]!r}...), which a venv cannot run.",
                hint=docker_hint,
            )
        running = ".".join(str(x) for x in self._python_info()[:2])
        try:
            plan = plan_build(spec, available=[running], default=running, venv=True)
            return None, plan
        except PythonUnavailableError:
            pass
        hosts = self._host_pythons(running)
        plan = plan_build(
            spec, available=list(hosts), default=running, venv=True,
            allow_nearest=fallback_allowed(self.python_fallback),
            where="this machine (its python3.X interpreters"
            + (" and uv)" if self.uv else "; uv is not installed)"),
            find_other=self._uv_find if self.uv else None,
        )
        version = plan.python.version
        if version == running:
            return None, plan
        return hosts.get(version, version), plan

    def _host_pythons(self, running: str) -> dict[str, str]:
        """The Python series on this machine: the running one, then ``python3.X`` on PATH that
        answer with their version (a shim that cannot run is skipped)."""
        found = {running: self.python}
        for minor in range(6, 16):
            series = f"3.{minor}"
            path = shutil.which(f"python{series}")
            if series in found or path is None:
                continue
            try:
                out = subprocess.run([path, "-c", "import sys; print(*sys.version_info[:2])"],
                                     capture_output=True, text=True, timeout=30).stdout.split()
            except (OSError, subprocess.TimeoutExpired):
                continue
            if out == ["3", str(minor)]:
                found[series] = path
        return found

    def _uv_find(self, asked: str) -> str | None:
        version = python_version_of(asked)
        return version if version and self._uv_has_python(version) else None

    def _python_info(self) -> tuple[int, ...]:
        if self.python == sys.executable:
            return tuple(sys.version_info[:3])
        out = subprocess.run(
            [self.python, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return tuple(int(x) for x in out.split())

    def _uv_has_python(self, version: str) -> bool:
        assert self.uv
        proc = subprocess.run([self.uv, "python", "find", version], capture_output=True, text=True)
        return proc.returncode == 0

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
        """The venv of ``spec``: found (``cached=True``) or built and renamed into place.

        ``no_cache`` makes it again even when it exists; ``refresh_base`` makes it again when
        the interpreter it was made from is now another Python version. ``lock_for(series)``
        gives the hash's recorded lock, which is then installed exactly (:mod:`.locks`).
        """
        h = spec.env_hash()
        final = self.path_for(spec, env_hash=h)
        environment = f"{env_name or spec.name}:{env_version or spec.version or ''}"
        self.root.mkdir(parents=True, exist_ok=True)
        with hash_lock(self.lock_dir, h):
            hit = self.lookup(spec, env_hash=h)
            replaced = hit.image_id if hit is not None else None
            if hit is not None and no_cache:
                log(f"Making the venv {final} again: no cache asked for")
                hit = None
            if hit is not None and refresh_base and self.plan(spec)[0] is None:
                now = ".".join(str(x) for x in self._python_info()[:3])
                if hit.base_image_id and hit.base_image_id != now:
                    log(f"The interpreter moved ({hit.base_image_id} -> {now}): making {final} again")
                    hit = None
            if hit is not None:
                log(f"Using the cached venv {final}")
                return hit
            uv_python, plan = self.plan(spec)  # after the lookup: a cached venv asks nothing
            if plan.translation is not None:
                urls = pip_index_urls(python=self.python)
                check_index(plan, urls[0] if urls else None)
            for note in plan.notes:
                log(f"note: {note}")
            self._clean_stale(h)
            if final.exists() and replaced is None:  # an unfinished folder: never a result
                shutil.rmtree(final, ignore_errors=True)
            if spec.image and spec.image != DEFAULT_BASE_IMAGE and plan.mapping is None:
                log(
                    f"Note: a venv does not use the base image {spec.image}; only its Python "
                    "packages are installed."
                )
            lock = lock_for(plan.python.version) if lock_for is not None else None
            if lock:
                log(f"Installing the recorded lock of {h[:12]} (Python {plan.python.version})")
                plan.requirements = parse_lock(lock).requirements
            try:
                result = self._build_swapped(spec, h, final, uv_python, log, no_cache, plan,
                                             lock=lock)
            except BuildError as exc:
                failure = lock_failure(exc.log_tail or "", parse_lock(lock), environment) \
                    if lock else None
                if failure is not None:
                    failure.log_tail = exc.log_tail
                    raise failure from exc
                raise
            result.replaced_image_id = replaced
            self._history.add(result, environment=environment, no_cache=no_cache,
                              refresh_base=refresh_base)
            return result

    def _build_swapped(
        self,
        spec: EnvironmentSpec,
        h: str,
        final: Path,
        uv_python: str | None,
        log: Log,
        no_cache: bool,
        plan: BuildPlan,
        *,
        lock: str | None = None,
    ) -> BuildResult:
        """Build in a temporary sibling, then rename it over ``final`` (the old one goes).

        ``lock``: the recorded lock, installed exactly; else the lock resolved is rendered."""
        tmp = self.root / f"{_TMP_PREFIX}{h}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        t0 = time.monotonic()
        lines: list[str] = []
        background = bytecode_in_background()
        try:
            result, pending = self._build_into(spec, h, tmp, final, uv_python, lines, log,
                                               no_cache, plan.requirements, locked=bool(lock),
                                               background=background)
            result.notes = list(plan.notes)
            result.lock_python = plan.python.version
            result.from_lock = bool(lock)
            result.lock = lock or render_lock((result.lock or "").splitlines(), env_hash=h,
                                              python=plan.python.version,
                                              tool="uv" if self.uv else "pip")
            result.build_seconds = round(time.monotonic() - t0, 3)
            result.built_at = utc_now()
            (tmp / MARKER).write_text(
                json.dumps({**result.to_dict(), "log": ""}, indent=1), encoding="utf-8"
            )
            old = None
            if final.exists():  # a rebuild: move the old venv aside, then drop it
                wait_for_bytecode(final, _PASS_WAIT_S)  # (its pass works by path)
                old = tmp.with_name(f"{tmp.name}-old")
                os.rename(final, old)
            os.rename(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if pending is not None:
            self._bytecode_after(final, pending, no_cache, lines, log)
        result.log = "\n".join(lines)
        return result

    def _bytecode_after(self, final: Path, first: BytecodeSummary, no_cache: bool,
                        lines: list[str], log: Log) -> None:
        """Start the background bytecode pass of the venv just put at ``final`` (compiled
        here when no process can be started)."""
        py = venv_python(final)
        try:
            compile_in_background(py, final, self.wheelhouse.bytecode, read=not no_cache,
                                  before=first)
            said = [*first.notes,
                    f"bytecode: compiled in the background ({BYTECODE_ENV}=build waits for "
                    "it); a job started meanwhile compiles what it imports"]
        except OSError:
            done = compile_venv(py, final, final, self.wheelhouse.bytecode, read=not no_cache,
                                before=first)
            said = [*done.notes, done.line]
        for line in said:
            lines.append(line)
            log(line)

    def _build_into(
        self,
        spec: EnvironmentSpec,
        h: str,
        tmp: Path,
        final: Path,
        uv_python: str | None,
        lines: list[str],
        log: Log,
        no_cache: bool = False,
        packages: list[str] | None = None,
        *,
        locked: bool = False,
        background: bool = False,
    ) -> tuple[BuildResult, BytecodeSummary | None]:
        """The venv built at ``tmp``, and when its bytecode is left to a ``background`` pass
        (it has packages), what the pass need not do (pip's bytecode, done during the build)."""
        packages = spec.pip_packages() if packages is None else packages
        py = venv_python(tmp)
        lock_lines: list[str] | None = None
        with ThreadPoolExecutor(2) as pool:
            settings = None
            if self.uv and packages:  # pip's configuration (a pip start) read meanwhile
                settings = pool.submit(uv_environment, {}, python=self.python)
            create = [self.uv, "venv"] if self.uv else [uv_python or self.python, "-m", "venv",
                                                        "--without-pip"]
            create += ["--python", uv_python or self.python] if self.uv else []
            self._run([*create, str(tmp)], "create the venv", lines, log, pip_config=False)
            info = self._add_pip(tmp, py, lines, log)
            # pip's bytecode is compiled (or taken from the cache) while the packages are
            # resolved and fetched; the rest after they are installed
            early = pool.submit(compile_venv, py, tmp, final, self.wheelhouse.bytecode,
                                read=not no_cache) if packages else None
            try:
                if settings is not None:
                    settings.result()
                if packages:
                    lock_lines = self._install(packages, tmp, py, lines, log,
                                               no_cache=no_cache, locked=locked, info=info)
            finally:  # (waited for before the folder can go; when it failed, all is
                # compiled below)
                first = None
                with contextlib.suppress(Exception):
                    first = early.result() if early is not None else None
        later = background and bool(packages)
        freeze = self._freeze_and_compile(py, tmp, final, bool(packages) and not later, lines,
                                          log, no_cache, first)
        if not packages:
            lock_lines = []
        elif lock_lines is None:  # uv (no --report): the freeze pins, without hashes
            lock_lines = [ln for ln in freeze if "==" in ln]
        _relocate(tmp, final)
        version = subprocess.run(
            [str(py), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        result = BuildResult(
            env_hash=h,
            image=str(final),
            image_id=str(final),
            size=_du(tmp),
            cached=False,
            resolved_packages=freeze,
            base_image=uv_python or self.python,
            base_image_id=version or None,
            kind=spec.kind,
            builder="venv",
            lock="\n".join(lock_lines),  # the lines; build() renders the lock text
        )
        return result, ((first or BytecodeSummary()) if later else None)

    def _add_pip(self, tmp: Path, py: Path, lines: list[str], log: Log) -> dict[str, Any] | None:
        """Put pip in the venv as ``python -m venv`` does: the interpreter's bundled wheels,
        unpacked without running pip (only pip's with uv: ``uv venv --seed``'s setuptools and
        wheel would land in the environment's lock; jobs run ``pip ...``). The interpreter's
        description, used to unpack wheels later (``None`` when it cannot say)."""
        info = wheel_install.describe(py)
        bundled = wheel_install.bundled_wheels(info) if info else []
        if self.uv:
            bundled = [w for w in bundled if w.name.startswith("pip-")]
        if info and bundled:
            wheel_install.unpack_wheels(info, tmp, bundled)
        elif self.uv:
            self._run([self.uv, "pip", "install", "-q", "--python", str(py), "pip"],
                      "add pip", lines, log, keep=False)
        else:  # (an interpreter without its bundled wheels: ensurepip says why)
            self._run([str(py), "-m", "ensurepip"], "add pip", lines, log, keep=False)
        return info

    def _install(self, packages: list[str], tmp: Path, py: Path, lines: list[str], log: Log,
                 *, no_cache: bool, locked: bool,
                 info: dict[str, Any] | None = None) -> list[str] | None:
        """Install ``packages`` into the venv at ``tmp``; the lock lines of what it installed.

        Not ``locked``: with uv, ``uv pip compile --generate-hashes`` resolves first and that
        lock is installed; with pip, see :meth:`_pip_install`.
        ``locked``: ``packages`` are a lock, installed exactly (``--no-deps``).
        """
        req = tmp / REQUIREMENTS
        req.write_text("\n".join(packages) + "\n", encoding="utf-8")
        if not self.uv:
            return self._pip_install(packages, req, py, lines, log, no_cache=no_cache,
                                     locked=locked, info=info)
        lock_lines: list[str] | None = None
        if not locked:
            compiled = self._run(
                [self.uv, "pip", "compile", "--python", str(py), "--generate-hashes",
                 "--no-header", "--quiet", *(["--no-cache"] if no_cache else []), str(req)],
                "resolve (uv pip compile)", lines, log, keep=True)
            lock_lines = compiled_lock_lines(compiled)
            packages, locked = lock_lines, True
            req.write_text("\n".join(packages) + "\n", encoding="utf-8")
        install = [self.uv, "pip", "install", "--python", str(py)]
        install += ["--no-cache"] if no_cache else []
        install += ["--no-deps"]
        install += ["--require-hashes"] if all("--hash=" in p for p in packages) else []
        self._run([*install, "-r", str(req)], "pip install", lines, log)
        return lock_lines

    def _pip_install(self, packages: list[str], req: Path, py: Path, lines: list[str],
                     log: Log, *, no_cache: bool, locked: bool,
                     info: dict[str, Any] | None = None) -> list[str] | None:
        """pip: a lock whose every file is in the wheelhouse installs from it with no index
        (unpacked without pip when this interpreter takes every wheel: :mod:`.wheel_install`);
        otherwise ``pip download`` fetches the files (resolving, unless ``locked``), pip
        installs from them (``--report`` gives the lock) and the wheelhouse keeps them."""
        pip = [str(py), "-B", "-m", "pip"]  # (-B: pip's bytecode is being compiled meanwhile)
        flags = ["--disable-pip-version-check", *(["--no-cache-dir"] if no_cache else [])]
        if locked:
            flags += ["--no-deps"]
            flags += ["--require-hashes"] if all("--hash=" in p for p in packages) else []
        kept = self.wheelhouse.files_for(packages, verify=True) if locked else None
        for name in self.wheelhouse.dropped:
            log(f"note: the wheelhouse copy of {name} was damaged (its sha256 changed); "
                "removed, the file is downloaded again")
        self.wheelhouse.dropped.clear()
        if kept is not None and info is not None and wheel_install.runnable_here(info, kept):
            lines.append(f"==> [mlws venv] unpack the lock's {len(kept)} wheel(s) from the "
                         "wheelhouse (checked by sha256; no index)")
            log(lines[-1])
            wheel_install.unpack_wheels(info, req.parent, kept)
            return None
        if kept is not None:
            with self.wheelhouse.links(kept) as folder:
                # --no-compile: pip compiles file by file; compile_venv does it on every core
                self._run([*pip, "install", *flags, "--no-index", "--find-links", str(folder),
                           "--no-compile", "-r", str(req)],
                          "pip install (from the wheelhouse, no index)", lines, log)
            return None
        staging = req.parent.with_name(req.parent.name + "-files")
        report = req.parent.with_name(req.parent.name + "-report.json")
        try:
            self._run([*pip, "download", *flags, "--dest", str(staging), "-r", str(req)],
                      "pip download", lines, log)
            local = [*flags, "--find-links", str(staging), "--report", str(report),
                     "--no-compile", "-r", str(req)]
            try:
                self._run([*pip, "install", "--no-index", *local], "pip install", lines, log)
            except BuildError:  # e.g. an sdist whose build needs packages from the index
                self._run([*pip, "install", *local], "pip install (with the index)", lines,
                          log)
            shas = self.wheelhouse.add_folder(staging)
            return _report_lines(report, shas)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            report.unlink(missing_ok=True)

    def _freeze_and_compile(self, py: Path, tmp: Path, final: Path, packages: bool,
                            lines: list[str], log: Log, no_cache: bool,
                            first: BytecodeSummary | None = None) -> list[str]:
        """The venv's ``pip freeze``, read while its bytecode is copied from the cache or
        compiled (and kept) when it has ``packages`` (but that of the distributions ``first``
        did already)."""
        freeze_cmd = (  # (-B: pip's own imports write no bytecode beside the compilation)
            [self.uv, "pip", "freeze", "--quiet", "--python", str(py)]
            if self.uv
            else [str(py), "-B", "-m", "pip", "freeze"]
        )
        with ThreadPoolExecutor(1) as pool:
            frozen = pool.submit(self._run, freeze_cmd, "pip freeze", lines, lambda _line: None,
                                 keep=False)
            if packages:
                done = compile_venv(py, tmp, final, self.wheelhouse.bytecode, read=not no_cache,
                                    before=first)
                for line in [*done.notes, done.line]:
                    lines.append(line)
                    log(line)
        return [ln for ln in frozen.result().splitlines() if ln and not ln.startswith("#")
                and ln.split("==")[0].lower() not in _SEEDED]  # as `pip freeze` lists

    def _run(
        self,
        cmd: Sequence[str],
        step: str,
        lines: list[str],
        log: Log,
        *,
        keep: bool = True,
        extra_env: dict[str, str] | None = None,
        pip_config: bool = True,
    ) -> str:
        """Run ``cmd``, streaming its output; :class:`BuildError` naming ``step`` on failure.
        ``pip_config``: a uv command gets this machine's pip configuration (an index)."""
        # (package builds run code the workspace did not write: the key stays out of reach)
        env = {**without_secret_key(), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
               "PIP_NO_INPUT": "1", **(extra_env or {})}
        env.pop("VIRTUAL_ENV", None)
        if self.uv and cmd[0] == self.uv and pip_config:  # uv does not read pip's configuration
            env = uv_environment(env, python=self.python)
            if "--no-deps" in cmd:  # a lock: nothing to constrain (and uv refuses ranges then)
                env.pop("UV_CONSTRAINT", None)
        if keep:
            lines.append(f"==> [mlws venv] {step}: {' '.join(cmd)}")
            log(lines[-1])
        out: list[str] = []
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                out.append(line)
                if keep:
                    lines.append(line)
                    log(line)
        finally:
            code = proc.wait()
        if code != 0:
            text = "\n".join(lines if keep else out)
            raise BuildError(
                f"Making the venv failed at step '{step}' (exit code {code}).",
                step=step,
                log_tail=tail(text),
                hint="Check the package names and versions (pip's error is in the log)."
                if "install" in step
                else None,
            )
        return "\n".join(out)

    def _clean_stale(self, h: str) -> None:
        """Remove temporary folders left by interrupted builds (whose lock nobody holds)."""
        for tmp in self.root.glob(f"{_TMP_PREFIX}*"):
            other = tmp.name[len(_TMP_PREFIX) :].split("-", 1)[0]
            if other == h:
                shutil.rmtree(tmp, ignore_errors=True)
                continue
            lock = hash_lock(self.lock_dir, other, timeout=0)
            with contextlib.suppress(Timeout), lock:
                shutil.rmtree(tmp, ignore_errors=True)

    def remove(self, spec: EnvironmentSpec) -> bool:
        """Delete the venv of ``spec``; whether there was one."""
        h = spec.env_hash()
        path = self.path_for(spec, env_hash=h)
        with hash_lock(self.lock_dir, h):
            if not path.exists():
                return False
            (path / MARKER).unlink(missing_ok=True)  # unfinished first, then gone
            wait_for_bytecode(path, _PASS_WAIT_S)  # (its pass works by path)
            shutil.rmtree(path, ignore_errors=True)
            return True


def _relocate(tmp: Path, final: Path) -> None:
    """Rewrite the temporary path to the final one in scripts and ``pyvenv.cfg``.

    A venv records its own path in its activation scripts and script shebangs; it is built
    under ``tmp`` and renamed to ``final`` afterwards.
    """
    old, new = str(tmp).encode(), str(final).encode()
    candidates = [tmp / "pyvenv.cfg", *sorted((tmp / _BIN).iterdir())]
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > (1 << 20):
            continue
        data = path.read_bytes()
        if old not in data or b"\0" in data:
            continue
        mode = path.stat().st_mode
        path.write_bytes(data.replace(old, new))
        os.chmod(path, mode)


def _report_lines(report: Path, shas: dict[str, str] | None = None) -> list[str] | None:
    """The lock lines of pip's ``--report`` (``None`` when there is none); a file installed
    from the download folder gets the sha256 of its bytes (``shas``: file name -> sha256)."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for item in data.get("install") or []:
        info = item.get("download_info") or {}
        name = unquote(str(info.get("url") or "").rsplit("/", 1)[-1])
        if shas and name in shas:
            archive = info.setdefault("archive_info", {})
            archive["hashes"] = {**(archive.get("hashes") or {}), "sha256": shas[name]}
    return list(lock_lines_from_report(data))


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
