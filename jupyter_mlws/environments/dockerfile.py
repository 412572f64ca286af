"""The Dockerfile of a "managed" environment: base image, Docker steps, then Python packages.

Layer order is chosen for the build cache: ``FROM``, the user's Docker steps verbatim, then the
packages in layers of their own, so that changing one pip pin reuses the base and Docker-step
layers (and the venv). Packages go into a venv at :data:`VENV_PATH` because Debian's Python is
"externally managed" (PEP 668); the venv sees the system's site-packages, so Python libraries a
Docker step installs (``apt-get install python3-numpy``) stay importable, and it comes first on
``PATH``.

Conda YAML on the offline bases and on the Python images mapped to them (a :class:`BuildPlan`,
see :mod:`.build_plan`): the conda dependencies arrive translated to PyPI and the base already
has the Python asked for. On any other base image: ``python=X.Y`` is honoured by *checking* the
base's Python (installing it with conda when the base has conda), ``pip`` itself needs nothing,
the ``pip:`` list is installed with pip, and any other conda dependency needs micromamba, mamba
or conda in the base. That is detected while building; without one the build fails with a
message naming the packages. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.environments.locks import LOCK_BEGIN, LOCK_END, REPORT_SCRIPT
from jupyter_mlws.errors import UnsupportedEnvironmentError

if TYPE_CHECKING:
    from jupyter_mlws.environments.build_plan import BuildPlan

VENV_PATH = "/opt/mlws/venv"
#: What builds leave uncompiled (a regular expression on paths): the packages' own test suites.
COMPILE_SKIP = r"site-packages/(.*/)?tests?/"
#: Where the build's own files are copied inside the image.
MLWS_DIR = "/opt/mlws"
#: The host's CA bundle, given to pip/conda inside builds (PyPI may sit behind a TLS proxy).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_FILE = "mlws-ca-certificates.crt"
REQUIREMENTS_FILE = "requirements.txt"
#: The script that turns pip's ``--report`` into lock lines (:data:`.locks.REPORT_SCRIPT`).
LOCK_SCRIPT_FILE = "mlws-lock.py"
#: Where an image keeps the lock lines of its pip step (read back for an image built elsewhere).
LOCK_LINES_FILE = "mlws-lock.txt"
#: The host's uv binary in the build context (when builds use uv); removed after the install.
UV_FILE = "mlws-uv"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The pip step prints ``pip freeze`` between these lines (the builder reads it from the log).
FREEZE_BEGIN = "--- resolved packages (pip freeze) ---"
FREEZE_END = "--- end of resolved packages ---"
#: Every message the build itself prints on failure starts with this (the builder looks for it).
MESSAGE_PREFIX = "mlws: "

_CONDA_FIND = "$(command -v micromamba || command -v mamba || command -v conda || true)"
_DEP = re.compile(r"^\s*(?:[A-Za-z0-9_.\-]+::)?([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")
_CLAUSE = re.compile(r"^(==|=|>=|<=|!=|>|<|~=)?\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?$")


def conda_dep_name(dep: str) -> str:
    """The package name of a conda dependency string (``conda-forge::numpy>=1.2`` -> numpy)."""
    m = _DEP.match(dep)
    return m.group(1).lower() if m else dep.strip().lower()


def split_conda_deps(spec: EnvironmentSpec) -> tuple[str | None, list[str]]:
    """``(python dependency or None, conda packages other than python and pip)``."""
    python: str | None = None
    others: list[str] = []
    for dep in spec.conda_packages():
        name = conda_dep_name(dep)
        if name == "python":
            python = dep
        elif name != "pip":
            others.append(dep)
    return python, others


def python_clauses(dep: str) -> list[tuple[str, tuple[int, ...]]]:
    """The version constraint of a ``python`` conda dependency as ``(operator, numbers)``.

    ``[]`` when it does not constrain the version (plain ``python``). ``=`` and ``X.Y.*`` read
    as "this release series" (``==`` on as many numbers as given); ``~=`` is compatible-release.
    Raises :class:`UnsupportedEnvironmentError` for a constraint it cannot read.
    """
    m = _DEP.match(dep)
    rest = (m.group(2) if m else "").strip()
    if not rest or rest == "*":
        return []
    clauses: list[tuple[str, tuple[int, ...]]] = []
    for part in rest.split(","):
        cm = _CLAUSE.match(part.strip())
        if cm is None:
            raise UnsupportedEnvironmentError(
                f"The conda dependency {dep!r} has a Python version constraint that cannot be "
                "checked.",
                hint="Write it as python=3.11, python>=3.10 or python>=3.10,<3.13.",
            )
        op = cm.group(1) or "="
        nums = tuple(int(x) for x in cm.group(2).split("."))
        if op == "=" or (cm.group(3) and op == "=="):
            op = "=="
        clauses.append((op, nums))
    return clauses


def _clause_expr(op: str, nums: tuple[int, ...]) -> str:
    n = len(nums)
    if op == "~=":
        return f"v[:{n}] >= {nums!r} and v[:{n - 1}] == {nums[: n - 1]!r}"
    return f"v[:{n}] {op} {nums!r}"


def python_condition(dep: str) -> str | None:
    """A Python expression on ``v = sys.version_info[:3]`` that holds when ``dep`` is met."""
    clauses = python_clauses(dep)
    if not clauses:
        return None
    return " and ".join(f"({_clause_expr(op, nums)})" for op, nums in clauses)


def python_matches(dep: str, version: tuple[int, ...]) -> bool:
    """Whether the Python ``version`` (e.g. ``(3, 11, 7)``) meets the dependency ``dep``."""
    for op, nums in python_clauses(dep):
        n = len(nums)
        have = tuple(version[:n])
        ok = {
            "==": have == nums,
            "!=": have != nums,
            ">=": have >= nums,
            "<=": have <= nums,
            ">": have > nums,
            "<": have < nums,
            "~=": have >= nums and tuple(version[: n - 1]) == nums[: n - 1],
        }[op]
        if not ok:
            return False
    return True


def python_version_of(dep: str) -> str | None:
    """``3.11`` for ``python=3.11`` / ``python==3.11.*``; ``None`` for ranges and plain python."""
    m = _DEP.match(dep)
    rest = (m.group(2) if m else "").strip()
    cm = _CLAUSE.match(rest) if rest else None
    if cm and (cm.group(1) or "=") in ("=", "=="):
        return cm.group(2)
    return None


def _fail(message: str) -> str:
    return f"{{ echo {shlex.quote(MESSAGE_PREFIX + message)} >&2; exit 1; }}"


def _ssl_env(with_ca: bool, tool: str) -> str:
    """Shell assignments that give ``tool`` (pip or conda) the copied CA bundle."""
    if not with_ca:
        return ""
    ca = f"{MLWS_DIR}/{CA_FILE}"
    if tool == "pip":
        return f"PIP_CERT={ca} "
    return (
        f"SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca} CONDA_SSL_VERIFY={ca} MAMBA_SSL_VERIFY={ca} "
    )


def _python_check_step(spec: EnvironmentSpec, dep: str, with_ca: bool) -> str | None:
    cond = python_condition(dep)
    if cond is None:
        return None
    code = f"import sys; v = tuple(sys.version_info[:3]); sys.exit(0 if {cond} else 1)"
    check = f"python3 -c {shlex.quote(code)}"
    wanted = dep.strip()
    version = python_version_of(dep)
    install = ""
    if version is not None:
        # A base with conda can provide another Python (best effort), then it is checked again.
        conda_env = _ssl_env(with_ca, "conda")
        install = (
            f'c={_CONDA_FIND}; if [ -n "$c" ]; then {conda_env}"$c" install -y -n base '
            f"{shlex.quote('python=' + version)} && {check} && exit 0; fi; "
        )
    return (
        "RUN if command -v python3 >/dev/null 2>&1 && "
        f"{check}; then exit 0; fi; {install}"
        f'echo "{MESSAGE_PREFIX}the conda file asks for {wanted} but the base image '
        f"{spec.image} has $(python3 -V 2>/dev/null || echo 'no python3'). Use a base image "
        'with that Python (or with conda to install it) or change the python line." >&2; '
        "exit 1"
    )


def _conda_step(spec: EnvironmentSpec, packages: list[str], with_ca: bool) -> str:
    channels = [str(c) for c in (spec.conda_file or {}).get("channels", []) or []]
    args = " ".join(f"-c {shlex.quote(c)}" for c in channels)
    if channels:
        args += " --override-channels"
    pkgs = " ".join(shlex.quote(p) for p in packages)
    names = ", ".join(packages)
    message = (
        f"the conda packages {names} need micromamba, mamba or conda in the base image "
        f"({spec.image}), which has none. Use a base image with conda (e.g. "
        "mambaorg/micromamba) or move them to the pip: section."
    )
    return (
        f"RUN c={_CONDA_FIND}; "
        f'if [ -z "$c" ]; then {_fail(message)}; fi; '
        f'{_ssl_env(with_ca, "conda")}"$c" install -y -n base {args} {pkgs} '
        '&& ("$c" clean -a -y >/dev/null 2>&1 || true)'
    )


#: The build argument with the URL of the wheelhouse server (:mod:`.docker_wheels`).
WHEELS_ARG = "MLWS_WHEELS"
#: The build argument with the URL of the host's uv binary on that server (when there is one):
#: a lock's exact files are installed by uv, fetched into the build's temp folder, not a layer.
UV_ARG = "MLWS_UV"
#: The build argument with the URL of the bytecode compiled on the host for the lock's files
#: (:mod:`.image_pyc`), unpacked by :data:`PYC_SCRIPT_FILE` instead of compiling in the build.
PYC_ARG = "MLWS_PYC"
PYC_SCRIPT_FILE = "mlws-pyc.py"
_WHEELS_FAILED = ("mlws-wheelhouse: installing from the wheelhouse server failed; trying the "
                  "package index")


def _uv_lines(pip_pkgs: list[str], uv_env: Mapping[str, str], *, with_ca: bool, locked: bool,
              series: str) -> list[str]:
    """The package step with uv: ``uv pip compile --generate-hashes`` makes the lock (unless
    the requirements are one), which is installed exactly; the binary is removed after."""
    uv, py = f"{MLWS_DIR}/{UV_FILE}", f"{VENV_PATH}/bin/python"
    env = dict(uv_env)
    if with_ca:
        env["SSL_CERT_FILE"] = f"{MLWS_DIR}/{CA_FILE}"
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    req, lock = f"{MLWS_DIR}/{REQUIREMENTS_FILE}", f"{MLWS_DIR}/mlws-compiled.txt"
    hashes = "--require-hashes " if not locked or all("--hash=" in p for p in pip_pkgs) else ""
    resolve = (f"cp {req} {lock}" if locked else
               f"{uv} pip compile --python {py} --generate-hashes --no-header -q {req} -o {lock}")
    install = f"{uv} pip install --python {py} --no-deps {hashes}-r {lock}"
    if locked:  # from the wheelhouse server when the build argument names one (see pip's)
        install = (f'if [ -n "${WHEELS_ARG}" ]; then {install} --no-index --find-links '
                   f'"${WHEELS_ARG}" || {{ echo \'{_WHEELS_FAILED}\'; {install}; }}; '
                   f"else {install}; fi")
    return [
        f"COPY {UV_FILE} {uv}",
        f"COPY {REQUIREMENTS_FILE} {req}",
        *([f"ARG {WHEELS_ARG}="] if locked else []),
        f"RUN chmod 755 {uv} && export {assigns} && {resolve} && {install} "
        f"&& echo '{FREEZE_BEGIN}' && {uv} pip freeze -q --python {py} && echo '{FREEZE_END}' "
        f"&& echo '{LOCK_BEGIN}' && (echo '# python {series}' && cat {lock}) "
        f"| tee {MLWS_DIR}/{LOCK_LINES_FILE} && echo '{LOCK_END}' && rm -f {uv} {lock}",
    ]


def _compile_step(py: str) -> str:
    """Byte-compile the venv's packages after a ``pip install --no-compile``: on every core
    (pip compiles file by file), skipping the packages' own test suites (``tests/``, ``test/``:
    about half the modules of numpy and pandas, which no program imports when it starts), so
    every module a container imports has its ``.pyc`` and builds spend half the time. Errors
    are ignored, as pip ignores them."""
    return (f"({py} -m compileall -q -j 0 -x '{COMPILE_SKIP}' "
            f"{VENV_PATH}/lib/python3*/site-packages >/dev/null || true)")


def _freeze_while_compiling(py: str, *, served: bool = False) -> str:
    """``pip freeze`` (it reads the packages' metadata) beside the byte compilation (it writes
    their ``__pycache__``): the freeze is printed between its markers once both are done.
    ``served``: the bytecode the host compiled is unpacked when :data:`PYC_ARG` names it and
    it suits this interpreter (:mod:`.image_pyc`), else compiled here."""
    out = f"{MLWS_DIR}/mlws-freeze.txt"
    step = _compile_step(py)
    if served:
        script = f"{MLWS_DIR}/{PYC_SCRIPT_FILE}"
        step = (f'{{ {{ [ -n "${PYC_ARG}" ] && {py} {script} "${PYC_ARG}"; }} '
                f"|| {step}; }}; rm -f {script}")
    return (f"({py} -m pip freeze > {out} & p=$!; {step}; wait $p) "
            f"&& echo '{FREEZE_BEGIN}' && cat {out} && echo '{FREEZE_END}' && rm -f {out}")


def _pip_locked_lines(pip_pkgs: list[str], *, with_ca: bool, series: str) -> list[str]:
    """Installing a lock (``--no-deps``, ``--require-hashes`` when every line has a hash).

    From the wheelhouse server named by the build argument :data:`WHEELS_ARG` when it is set
    (``--no-index``): by the host's uv when :data:`UV_ARG` names it there (fetched to ``/tmp``
    and removed in the same step; a lock's exact files install the same whichever installer
    unpacks them, and uv does it in parallel with no interpreter to start), else by pip; the
    index when that fails. Without the server, pip from the index. Bytecode is compiled after
    (:func:`_compile_step`); the lock kept in the image is the lock installed."""
    py, req = f"{VENV_PATH}/bin/python", f"{MLWS_DIR}/{REQUIREMENTS_FILE}"
    hashes = "--require-hashes " if all("--hash=" in p for p in pip_pkgs) else ""
    env = f"{_ssl_env(with_ca, 'pip')}PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1"
    install = (f"{py} -m pip install --no-cache-dir --progress-bar off --no-compile --no-deps "
               f"{hashes}-r {req}")
    pip_served = f'{install} --no-index --find-links "${WHEELS_ARG}" --trusted-host "$H"'
    uv = "/tmp/mlws-uv"
    fetch = (f"{py} -c 'import sys, urllib.request as u; u.urlretrieve(sys.argv[1], sys.argv[2])' "
             f'"${UV_ARG}" {uv} && chmod 700 {uv} && {uv} --version')
    uv_served = (f"UV_NO_CACHE=1 UV_NO_PROGRESS=1 {uv} pip install --python {py} --no-deps "
                 f'{hashes}--no-index --find-links "${WHEELS_ARG}" -r {req}')
    served = (f'if [ -n "${UV_ARG}" ] && {fetch}; then {uv_served}; else {pip_served}; fi')
    fallback = f"echo '{_WHEELS_FAILED}'"
    return [
        f"COPY {REQUIREMENTS_FILE} {PYC_SCRIPT_FILE} {MLWS_DIR}/",
        f"ARG {WHEELS_ARG}= {UV_ARG}= {PYC_ARG}=",
        f"RUN export {env} && if [ -n \"${WHEELS_ARG}\" ]; then "
        f'H="${{{WHEELS_ARG}#http://}}"; H="${{H%%/*}}"; '
        f"{{ {served}; }} || {{ {fallback}; {install}; }}; else {install}; fi "
        f"&& rm -f {uv} && {_freeze_while_compiling(py, served=True)} "
        f"&& echo '{LOCK_BEGIN}' && (echo '# python {series}' && cat {req}) "
        f"| tee {MLWS_DIR}/{LOCK_LINES_FILE} && echo '{LOCK_END}'",
    ]


def _venv_and_pip_lines(base: str | None, pip_pkgs: list[str], *, venv: bool,
                        with_ca: bool, locked: bool = False, series: str = "image",
                        uv_env: Mapping[str, str] | None = None) -> list[str]:
    """The venv (when there are packages, or ``venv``) and the pip step that prints its freeze.

    With ``venv`` (a mapped Python image), pip in the image gets the CA bundle too, as
    ``pip install`` works in Docker Hub's images. With a plan, the step also prints the lock
    (:mod:`.locks`) made from pip's ``--report`` when the image's pip has it, also kept in the
    image with the lock's key ``series`` (the Python series); ``locked``: the requirements *are*
    a lock, installed with ``--no-deps`` (and ``--require-hashes``)."""
    lines: list[str] = []
    if pip_pkgs or venv:
        no_python = (
            f"the base image {base} has no python3, so the pip packages cannot be "
            "installed. Use a base image with Python."
        )
        lines += [
            f"RUN command -v python3 >/dev/null 2>&1 || {_fail(no_python)}; "
            f"python3 -m venv --system-site-packages {VENV_PATH}",
            f"ENV VIRTUAL_ENV={VENV_PATH} PATH={VENV_PATH}/bin:${{PATH:-{DEFAULT_PATH}}}",
        ]
        if with_ca and venv:
            lines.append(f"ENV PIP_CERT={MLWS_DIR}/{CA_FILE}")
    if pip_pkgs and uv_env is not None:
        lines += _uv_lines(pip_pkgs, uv_env, with_ca=with_ca, locked=locked, series=series)
    elif pip_pkgs and locked:
        lines += _pip_locked_lines(pip_pkgs, with_ca=with_ca, series=series)
    elif pip_pkgs:  # pip prints its freeze, then (when it has --report) the lock it made
        py = f"{VENV_PATH}/bin/python"
        report = f"{MLWS_DIR}/pip-report.json"
        flags = ""
        if locked:
            flags = "--no-deps " + ("--require-hashes " if all("--hash=" in p for p in pip_pkgs)
                                    else "")
        lines += [
            f"COPY {LOCK_SCRIPT_FILE} {MLWS_DIR}/{LOCK_SCRIPT_FILE}",
            f"COPY {REQUIREMENTS_FILE} {MLWS_DIR}/{REQUIREMENTS_FILE}",
            f"RUN R=''; if {py} -m pip install --help | grep -q -- '--report'; then "
            f"R='--report {report}'; fi; "
            f"{_ssl_env(with_ca, 'pip')}PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "
            f"{py} -m pip install --no-cache-dir --progress-bar off --no-compile {flags}$R "
            f"-r {MLWS_DIR}/{REQUIREMENTS_FILE} && {_freeze_while_compiling(py)} "
            f"&& if [ -f {report} ]; then echo '{LOCK_BEGIN}' && "
            f"(echo '# python {series}' && {py} {MLWS_DIR}/{LOCK_SCRIPT_FILE} {report}) "
            f"| tee {MLWS_DIR}/{LOCK_LINES_FILE} && echo '{LOCK_END}' && rm -f {report}; fi",
        ]
    return lines


def render_dockerfile(
    spec: EnvironmentSpec,
    *,
    with_ca: bool | None = None,
    labels: Mapping[str, str] | None = None,
    plan: BuildPlan | None = None,
) -> str:
    """The Dockerfile of a "managed" environment (or of a mapped Python image).

    ``with_ca`` copies the host CA bundle (``CA_FILE`` in the context) for pip and conda;
    by default when the host has one. ``labels`` become one ``LABEL`` instruction at the end.
    The pip step prints ``pip freeze`` between :data:`FREEZE_BEGIN` and :data:`FREEZE_END`.
    With a ``plan`` (:mod:`.build_plan`), the build starts from its offline base, installs its
    requirements (conda dependencies already translated) and always makes the venv.
    """
    if spec.kind != "managed" and plan is None:
        raise UnsupportedEnvironmentError(
            f"Only environments built from a base image have a rendered Dockerfile; "
            f"{spec.name!r} is of kind {spec.kind!r}."
        )
    if with_ca is None:
        with_ca = HOST_CA_BUNDLE.is_file()
    python_dep: str | None
    conda_pkgs: list[str]
    if plan is not None:
        python_dep, conda_pkgs, pip_pkgs = None, [], list(plan.requirements)
    else:
        python_dep, conda_pkgs = split_conda_deps(spec)
        pip_pkgs = spec.pip_packages()
    base = plan.base if plan is not None else spec.image
    lines = [
        "# Rendered by jupyter_mlws for environment "
        f"{spec.name}{':' + spec.version if spec.version else ''}; hash {spec.env_hash()}.",
        f"FROM {base}",
    ]
    if plan is not None and plan.notes:
        lines += [f"# {note}" for note in plan.notes]
    if spec.docker_steps:
        lines.append("# --- the definition's Docker steps, verbatim ---")
        lines.extend(spec.docker_steps)
    lines += [
        "# --- Python packages (layers of their own, so a package change reuses the above) ---",
        "# The definition's environment_variables are not baked into the image: they do not",
        "# count in its hash, and jobs set them when they run.",
    ]
    needs_ca = with_ca and bool(pip_pkgs or conda_pkgs or python_dep or plan is not None)
    if needs_ca:
        lines.append(f"COPY {CA_FILE} {MLWS_DIR}/{CA_FILE}")
    if python_dep is not None:
        step = _python_check_step(spec, python_dep, needs_ca)
        if step:
            lines.append(step)
    if conda_pkgs:
        lines.append(_conda_step(spec, conda_pkgs, needs_ca))
    lines += _venv_and_pip_lines(base, pip_pkgs, venv=plan is not None and plan.mapping is not None,
                                 with_ca=needs_ca, locked=plan is not None and plan.locked,
                                 series=plan.python.version if plan is not None else "image",
                                 uv_env=plan.uv_env if plan is not None and plan.uv_binary
                                 else None)
    if labels:
        pairs = " ".join(f"{k}={json.dumps(str(v))}" for k, v in sorted(labels.items()))
        lines.append(f"LABEL {pairs}")
    return "\n".join(lines) + "\n"


def build_context_files(
    spec: EnvironmentSpec,
    *,
    ca_bundle: Path | None = HOST_CA_BUNDLE,
    labels: Mapping[str, str] | None = None,
    plan: BuildPlan | None = None,
) -> dict[str, bytes]:
    """The small in-memory build context: ``Dockerfile``, ``requirements.txt``, the CA bundle."""
    with_ca = ca_bundle is not None and Path(ca_bundle).is_file()
    text = render_dockerfile(spec, with_ca=with_ca, labels=labels, plan=plan)
    files: dict[str, bytes] = {"Dockerfile": text.encode("utf-8")}
    pip_pkgs = plan.requirements if plan is not None else spec.pip_packages()
    if pip_pkgs:
        files[REQUIREMENTS_FILE] = ("\n".join(pip_pkgs) + "\n").encode("utf-8")
    if plan is not None and plan.uv_binary and f"COPY {UV_FILE}" in files["Dockerfile"].decode():
        files[UV_FILE] = Path(plan.uv_binary).read_bytes()
    if LOCK_SCRIPT_FILE in files["Dockerfile"].decode():
        files[LOCK_SCRIPT_FILE] = REPORT_SCRIPT.encode("utf-8")
    if f"{PYC_SCRIPT_FILE} {MLWS_DIR}/" in files["Dockerfile"].decode():
        from jupyter_mlws.environments.image_pyc import UNPACK_SCRIPT

        files[PYC_SCRIPT_FILE] = UNPACK_SCRIPT.encode("utf-8")
    if with_ca and ca_bundle is not None and f"COPY {CA_FILE}" in files["Dockerfile"].decode():
        files[CA_FILE] = Path(ca_bundle).read_bytes()
    return files
