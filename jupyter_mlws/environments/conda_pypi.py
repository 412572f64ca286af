"""Conda files built offline: conda dependencies translated to PyPI requirements.

Conda channels are not reachable from these machines, but most conda packages in Azure ML
conda files exist on PyPI under the same name. At build time (never in the environment's
identity: the hash stays the hash of the definition as written) each conda dependency becomes
one of:

- the interpreter: ``python=3.11`` selects the base image / interpreter (see :mod:`.image_map`);
- nothing: ``pip`` itself (every base has pip), and system or GPU libraries that conda ships
  but PyPI wheels bundle or the base provides (:data:`SYSTEM`, :data:`GPU`) - dropped, with a
  note in the build log and the build record;
- a PyPI requirement: the name through :data:`RENAMED` (``pytorch`` -> ``torch``), the version
  through :func:`conda_version_to_pip` (``numpy=2.3.1`` -> ``numpy==2.3.1``, ``numpy=1.26`` ->
  ``numpy==1.26.*``), channel prefixes (``conda-forge::``) and build strings (``=py311_0``)
  stripped;
- an error: packages that exist only on conda (:data:`CONDA_ONLY`, ``r-*``), or that the package
  index says it does not have (:func:`missing_on_index`). :class:`CondaTranslationError` names
  every one of them at once and says how to fix it.

The ``pip:`` sub-list is passed through as it is.
"""

from __future__ import annotations

import functools
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from jupyter_mlws.errors import CondaTranslationError

__all__ = [
    "CONDA_ONLY",
    "GPU",
    "RENAMED",
    "SYSTEM",
    "CondaTranslation",
    "conda_version_to_pip",
    "missing_on_index",
    "no_pypi_error",
    "translate_conda",
]

#: Conda name -> PyPI name, where they differ (or where the same name means another thing).
RENAMED: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "tensorflow-gpu": "tensorflow",
    "tensorflow-cpu": "tensorflow-cpu",
    "python-graphviz": "graphviz",
    "pyyaml": "pyyaml",
    "matplotlib-base": "matplotlib",
    "numpy-base": "numpy",
    "pytables": "tables",
    "py-opencv": "opencv-python-headless",
    "opencv": "opencv-python-headless",
    "msgpack-python": "msgpack",
    "ruamel_yaml": "ruamel.yaml",
    "psycopg2": "psycopg2-binary",
    "python-kubernetes": "kubernetes",
    "pyqt": "pyqt5",
    "lightgbm": "lightgbm",
    "scikit-learn": "scikit-learn",
}

#: System libraries and tools conda ships as packages. PyPI wheels bundle the native libraries
#: they need and the base image has the rest, so these are dropped (with a note).
SYSTEM: frozenset[str] = frozenset({
    "libgcc", "libgcc-ng", "libstdcxx", "libstdcxx-ng", "libgomp", "libgfortran",
    "libgfortran-ng", "libgfortran5", "ld_impl_linux-64", "libzlib", "zlib", "bzip2", "xz",
    "lz4-c", "zstd", "libffi", "openssl", "ca-certificates", "ncurses", "readline", "sqlite",
    "tk", "tzdata", "libuuid", "libnsl", "libsqlite", "libxcrypt", "libexpat", "expat",
    "mkl", "mkl-service", "mkl_fft", "mkl_random", "mkl-include", "intel-openmp", "nomkl",
    "blas", "libblas", "libcblas", "liblapack", "liblapacke", "openblas", "libopenblas",
    "llvm-openmp", "tbb", "hdf5", "libprotobuf", "libarrow", "arrow-cpp", "libxgboost",
    "liblightgbm", "libopencv", "graphviz", "libiconv", "icu", "libxml2", "libpng", "jpeg",
    "libjpeg-turbo", "libtiff", "freetype", "fontconfig", "git", "curl", "make", "gcc", "gxx",
    "gfortran", "compilers", "c-compiler", "cxx-compiler", "fortran-compiler", "nodejs",
    "openjdk", "openmpi", "mpich", "yaml", "libyaml", "krb5", "libedit", "libsodium",
    "libcurl", "boost", "boost-cpp", "cpuonly",
})

#: GPU-only libraries: everything here builds for CPU, so these are dropped (with a note).
GPU: frozenset[str] = frozenset({
    "cudatoolkit", "cudatoolkit-dev", "cudnn", "nccl", "pytorch-cuda", "cuda", "cupti",
    "magma", "magma-cuda",
})

#: Packages that exist only on conda: no PyPI equivalent, refused by name.
CONDA_ONLY: frozenset[str] = frozenset({
    "conda", "conda-build", "conda-libmamba-solver", "mamba", "micromamba", "anaconda",
    "r-base", "r-essentials", "rstudio",
})

_SYSTEM_PATTERNS = (re.compile(r"^_"), re.compile(r"_(linux|osx|win)-(64|aarch64|arm64|32)$"))
_GPU_PATTERNS = (re.compile(r"^cuda-"), re.compile(r"^libcu"), re.compile(r"^libnv"),
                 re.compile(r"^libnccl"))
_CONDA_ONLY_PATTERNS = (re.compile(r"^r-"),)
_NAME = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(.*)$")
_BRACKET = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*\[(.*)\]\s*$")
_KEYVAL = re.compile(r"""(\w+)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^,\s]+))""")
_OP = re.compile(r"^(==|!=|>=|<=|~=|>|<|=)?\s*(.+)$")


@dataclass
class CondaTranslation:
    """What a conda file becomes offline.

    ``python`` is the conda ``python`` dependency as written (``None``: not given);
    ``requirements`` the PyPI requirements from conda dependencies, then the ``pip:`` list;
    ``notes`` one line per dependency that was renamed, re-pinned or dropped.
    """

    python: str | None = None
    requirements: list[str] = field(default_factory=list)
    from_conda: list[str] = field(default_factory=list)  # the requirements made from conda deps
    translated: list[tuple[str, str]] = field(default_factory=list)  # (conda dep, requirement)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (conda dep, why)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # dependencies with no PyPI equivalent

    @property
    def changed(self) -> bool:
        """Whether any conda dependency (other than python and pip) was translated or dropped."""
        return bool(self.translated or self.dropped)


def conda_version_to_pip(version: str) -> str:
    """A conda version spec as a pip specifier: ``1.26`` -> ``==1.26.*``; ``=2.3.1`` ->
    ``==2.3.1``; ``>=1.2,<2`` as is; ``*`` -> ``''``.

    Conda's ``=X`` (and a bare version) means "X or a release starting with X": pinned to every
    part given when there are three or more (``==2.3.1``), else as a prefix (``==1.26.*``).

    Raises:
        ValueError: the spec uses ``|`` (either-or), which pip cannot express.
    """
    text = version.strip()
    if text in ("", "*"):
        return ""
    if "|" in text:
        raise ValueError("'|' (either-or) has no pip equivalent")
    out = []
    for clause in text.split(","):
        m = _OP.match(clause.strip())
        if not m:
            raise ValueError(f"cannot read the version {clause!r}")
        op, ver = m.group(1) or "", m.group(2).strip()
        if op in ("", "="):
            ver = ver.rstrip("*").rstrip(".")
            if not ver:
                continue
            parts = ver.split(".")
            fuzzy = version.strip().endswith("*") or len(parts) < 3
            out.append(f"=={ver}.*" if fuzzy else f"=={ver}")
        else:
            out.append(f"{op}{ver}")
    return ",".join(out)


def _split_dep(dep: str) -> tuple[str, str, str]:
    """``(name, version spec, build string)`` of a conda match spec, channel prefix removed."""
    text = dep.strip()
    if "::" in text:
        text = text.split("::", 1)[1].strip()
    bracket = _BRACKET.match(text)
    if bracket:
        found = {m.group(1): next(g for g in m.groups()[1:] if g is not None)
                 for m in _KEYVAL.finditer(bracket.group(2))}
        return bracket.group(1), found.get("version", ""), found.get("build", "")
    m = _NAME.match(text)
    if not m:
        raise ValueError("cannot read the package name")
    name, rest = m.group(1), m.group(2).strip()
    if not rest:
        return name, "", ""
    if " " in rest:  # "1.2 py311_0" or ">=1.2 py311_0"
        version, _, build = rest.partition(" ")
        return name, version.strip(), build.strip()
    fuzzy = re.fullmatch(r"(==?)([^=<>!~,|]+)(?:=(\S+))?", rest)
    if fuzzy:  # =1.2, =1.2=py_0, ==1.2, ==1.2=py_0
        return name, fuzzy.group(1) + fuzzy.group(2), fuzzy.group(3) or ""
    return name, rest, ""


def _is(name: str, names: frozenset[str], patterns: Iterable[re.Pattern[str]]) -> bool:
    return name in names or any(p.search(name) for p in patterns)


def translate_conda(conda_file: Mapping[str, Any] | None, *,
                    strict: bool = True) -> CondaTranslation:
    """Translate a conda file's dependencies to PyPI requirements (see the module docstring).

    Does not ask the package index; :func:`missing_on_index` does that. With ``strict`` off,
    the dependencies with no PyPI equivalent are listed in ``problems`` instead of raised.

    Raises:
        CondaTranslationError: conda-only packages, or specs pip cannot express, all named.
    """
    out = CondaTranslation()
    problems: list[str] = []
    pip_list: list[str] = []
    for dep in (conda_file or {}).get("dependencies", []) or []:
        if isinstance(dep, Mapping):
            pip_list.extend(str(x) for x in dep.get("pip") or [])
            continue
        text = str(dep).strip()
        try:
            name, version, build = _split_dep(text)
            conda_name = name.lower()
            if conda_name == "python":
                out.python = text
                continue
            if conda_name == "pip":
                continue
            if _is(conda_name, CONDA_ONLY, _CONDA_ONLY_PATTERNS):
                problems.append(f"{text} (exists only on conda)")
                continue
            if _is(conda_name, GPU, _GPU_PATTERNS):
                out.dropped.append((text, "a GPU library; environments build for CPU here"))
                continue
            if _is(conda_name, SYSTEM, _SYSTEM_PATTERNS):
                out.dropped.append((text, "a system library; PyPI wheels bundle what they need"))
                continue
            pypi = RENAMED.get(conda_name, conda_name)
            requirement = pypi + conda_version_to_pip(version)
            Requirement(requirement)  # pip must be able to read it
        except (ValueError, InvalidRequirement) as exc:
            problems.append(f"{text} ({exc})")
            continue
        out.requirements.append(requirement)
        if requirement != text or build:
            out.translated.append((text, requirement))
    out.problems = problems
    if problems and strict:
        raise no_pypi_error(problems)
    out.from_conda = list(out.requirements)
    out.requirements.extend(pip_list)
    out.notes = _notes(out)
    channels = [str(c) for c in (conda_file or {}).get("channels") or []]
    if channels and out.from_conda:
        out.notes.append(f"conda: channels {', '.join(channels)} not used; the conda "
                         "dependencies above come from the machine's PyPI index")
    return out


def no_pypi_error(problems: list[str]) -> CondaTranslationError:
    """The error naming every conda dependency with no PyPI equivalent, and how to fix it."""
    return CondaTranslationError(
        "These conda dependencies have no PyPI equivalent (conda channels are not reachable "
        f"here): {'; '.join(problems)}.",
        hint="Replace each with its PyPI package in the conda file's `pip:` list, or remove it.",
        packages=problems)


def _notes(out: CondaTranslation) -> list[str]:
    notes = [f"conda -> PyPI: {dep} -> {req}" for dep, req in out.translated]
    notes += [f"conda: dropped {dep} ({why})" for dep, why in out.dropped]
    return notes


def missing_on_index(names: Iterable[str], index_url: str | None,
                     *, timeout: float = 15.0) -> list[str]:
    """The project ``names`` the package index (its simple API) says it does not have.

    A name the index cannot be asked about (no index, network error, any answer but 404) is
    not reported: pip's own error then says what is wrong.
    """
    if not index_url:
        return []
    return [n for n in dict.fromkeys(names) if _absent(index_url.rstrip("/"), n, timeout)]


@functools.lru_cache(maxsize=512)
def _absent(index: str, name: str, timeout: float) -> bool:
    project = re.sub(r"[-_.]+", "-", name).lower()
    request = urllib.request.Request(
        f"{index}/{project}/", method="GET",
        headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - config
            answer.read(1)
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except (OSError, ValueError):
        return False
    return False
