"""Python images from Docker Hub and Azure's MCR, mapped to offline bases at build time.

No container registry is reachable here, so images such as ``python:3.11-slim`` or
``mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04`` cannot be pulled. What they mean to an
environment is "a Linux with this Python (and pip)", which the offline bases made from Debian's
packages give (:data:`DEBIAN_PYTHONS`; ``mlws image bootstrap --python X.Y`` makes them, and a
build makes a missing one on demand).

The mapping happens when an environment is built, never in its identity: the hash is of the
definition as written, so ``python:3.11-slim`` keeps its hash whatever it is built from.

Which Python: a conda file's ``python=X.Y`` wins, else the image's (``python:3.9``, ``py38`` in an
Azure image name), else the default (3.11). A Python that is not available (``python:3.12``) is
an error naming the versions there are, unless the user allows the nearest one:
``python_fallback: nearest`` in ``workspace.yaml`` or ``MLWS_PYTHON_FALLBACK=nearest``. What was
used is recorded in the build log and the build record (``notes``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from jupyter_mlws.environments.dockerfile import python_clauses
from jupyter_mlws.errors import PythonUnavailableError, ValidationError

__all__ = [
    "DEBIAN_PYTHONS",
    "DEFAULT_PYTHON",
    "FALLBACK_ENV",
    "ImageMapping",
    "PythonChoice",
    "choose_python",
    "fallback_allowed",
    "map_image",
    "python_base",
    "python_venv_image",
    "rewrite_from_lines",
]

DEFAULT_PYTHON = "3.11"
#: Python series -> (Debian suite, offline base image). Keep in step with bootstrap.BASE_IMAGES.
DEBIAN_PYTHONS: dict[str, tuple[str, str]] = {
    "3.9": ("bullseye", "mlws/base-python:3.9-bullseye"),
    "3.11": ("bookworm", "mlws/base-python:3.11-bookworm"),
    "3.13": ("trixie", "mlws/base-python:3.13-trixie"),
}
FALLBACK_ENV = "MLWS_PYTHON_FALLBACK"
FALLBACK_SETTING = "python_fallback"
_FALLBACK_VALUES = ("exact", "nearest")
_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_HUB_TAG = re.compile(r"^(\d+(?:\.\d+){0,2})(?:[a-z]+\d*)?(?:-(.*))?$")
_PY_IN_NAME = re.compile(r"(?:^|[-_])py(3)(\d{1,2})(?:[-_]|$)")


@dataclass(frozen=True)
class ImageMapping:
    """What an image reference means here: a Python (``None``: no version asked) on a base."""

    image: str
    origin: str  # e.g. "Docker Hub's python image"
    python: str | None
    note: str | None = None

    @property
    def local(self) -> bool:
        """Whether the image is one of the offline bases themselves (nothing to stand in for)."""
        return self.origin in ("the default base", "an offline base")


def python_base(series: str) -> str:
    """The offline base image of a Python series (``3.11`` -> ``mlws/base-python:3.11-bookworm``)."""
    return DEBIAN_PYTHONS[series][1]


def python_venv_image(series: str) -> str:
    """The base of ``series`` with a venv first on PATH (``python``/``pip`` as Docker Hub's
    images have them; pip reaches PyPI with the host's CA bundle)."""
    suite, _ = DEBIAN_PYTHONS[series]
    return f"mlws/base-python-venv:{series}-{suite}"


def _split_ref(ref: str) -> tuple[str | None, str, str | None]:
    """``(registry or None, path, tag or None)``; a digest is dropped."""
    name = ref.split("@", 1)[0]
    first, sep, rest = name.partition("/")
    registry = None
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, name = first.lower(), rest
    path, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return registry, name, None
    return registry, path, tag


def map_image(ref: str | None) -> ImageMapping | None:
    """The mapping of ``ref`` when it is a Python image this machine stands in for, else None.

    Mapped: Docker Hub's ``python`` (``python``, ``python:3.11-slim``, ``docker.io/python``,
    ``library/python:3.9.18-bullseye``), our own default base, and Azure's base images under
    ``mcr.microsoft.com/azureml/`` (``openmpi*-ubuntu*``, ``minimal-ubuntu*-py*``, ``curated/*``).
    """
    if not ref:
        return None
    if ref == python_base(DEFAULT_PYTHON):
        return ImageMapping(ref, "the default base", None)
    for series, (_, base) in DEBIAN_PYTHONS.items():
        if ref == base:
            return ImageMapping(ref, "an offline base", series)
    registry, path, tag = _split_ref(ref)
    if (registry is None or registry in _DOCKER_HUB) and path in ("python", "library/python"):
        return _hub(ref, tag)
    if registry == "mcr.microsoft.com" and path.startswith("azureml/"):
        return _azure(ref, path[len("azureml/"):])
    return None


def _hub(ref: str, tag: str | None) -> ImageMapping:
    m = _HUB_TAG.match(tag or "")
    version = m.group(1) if m else None
    variant = (m.group(2) if m else tag) or ""
    note = None
    if "alpine" in variant or "windows" in variant:
        note = f"the {variant} variant is stood in for by a Debian base"
    if version is not None and "." not in version:  # python:3 is any Python 3
        version = None
    return ImageMapping(ref, "Docker Hub's python image", version, note)


def _azure(ref: str, name: str) -> ImageMapping:
    m = _PY_IN_NAME.search(name.replace("/", "-"))
    version = f"{m.group(1)}.{int(m.group(2))}" if m else None
    notes = []
    if "cuda" in name or "gpu" in name:
        notes.append("a GPU image: built for CPU here")
    if name.startswith("curated/"):
        origin = "an Azure ML curated image"
        notes.append("its preinstalled packages are not included: list them in a conda file "
                     "or use the registry environment azureml://registries/azureml/"
                     f"environments/{name.split('/', 1)[1].split(':', 1)[0]}")
    else:
        origin = "an Azure ML base image"
        notes.append("it has conda in Azure; here a Debian base with Python and pip, and conda "
                     "files are translated to PyPI")
    return ImageMapping(ref, origin, version, "; ".join(notes) or None)


# --- which Python -------------------------------------------------------------------------------
def fallback_allowed(setting: str | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the nearest Python may stand in: ``MLWS_PYTHON_FALLBACK`` when set, else the
    workspace setting ``python_fallback`` (``exact``, the default, or ``nearest``).

    Raises:
        ValidationError: the environment variable holds another value.
    """
    env = os.environ if environ is None else environ
    value = (env.get(FALLBACK_ENV) or setting or "exact").strip().lower()
    if value not in _FALLBACK_VALUES:
        raise ValidationError(
            f"{FALLBACK_ENV}={value!r} is not a Python fallback rule.",
            hint=f"Use {' or '.join(_FALLBACK_VALUES)}.")
    return value == "nearest"


@dataclass(frozen=True)
class PythonChoice:
    """The Python series used, what was asked, and whether the nearest one stood in."""

    version: str
    asked: str | None = None
    nearest: bool = False

    def note(self) -> str | None:
        """A line for the build log and record, when what is used differs from what was asked."""
        if self.asked is None:
            return None
        if self.nearest:
            return (f"Python: {self.asked} asked, which is not available; {self.version} used "
                    f"(the nearest; {FALLBACK_SETTING}: nearest)")
        return f"Python: {self.asked} asked; {self.version} used"


def _series(version: str) -> tuple[int, int]:
    major, minor = (version.split(".") + ["0"])[:2]
    return int(major), int(minor)


def _matches(clauses: list[tuple[str, tuple[int, ...]]], series: str) -> bool:
    have = _series(series)
    for op, nums in clauses:
        want = nums[:2] if op in ("==", "~=") else nums  # a patch pin asks for the series
        n = len(want)
        got = have[:n]
        ok = {"==": got == want, "!=": got != want, ">=": got >= want, "<=": got <= want,
              ">": got > want, "<": got < want, "~=": got >= want}[op]
        if not ok:
            return False
    return True


def choose_python(
    asked: str | None,
    available: Sequence[str],
    *,
    default: str,
    allow_nearest: bool,
    where: str,
    who: str | None = None,
    hint: str = "",
) -> PythonChoice:
    """The Python series to use among ``available`` for ``asked`` (``python=3.12``,
    ``python>=3.10``, or ``None``: not asked, so ``default``).

    A patch pin (``python=3.11.4``) is met by its series. Several matches: ``default`` when it
    is one, else the newest. No match: the nearest series when ``allow_nearest`` (ties go to the
    newer: the language keeps old code running), else :class:`PythonUnavailableError` (its
    message starts with ``who``, e.g. "The image python:3.12-slim", and ends with ``hint``).
    """
    clauses = python_clauses(asked) if asked else []
    if not clauses:
        return PythonChoice(default)
    matches = [v for v in available if _matches(clauses, v)]
    if matches:
        best = default if default in matches else max(matches, key=_series)
        return PythonChoice(best, asked.strip() if asked else None)
    target = clauses[0][1]
    wanted = ".".join(str(x) for x in target)
    listed = ", ".join(sorted(available, key=_series))
    if not allow_nearest or target[0] != 3:
        raise PythonUnavailableError(
            f"{who or asked} asks for Python {wanted}, which {where} does not have: there "
            f"{'is' if len(available) == 1 else 'are'} Python {listed}.",
            hint=f"Ask for one of those, or let the nearest one stand in with "
            f"`{FALLBACK_SETTING}: nearest` in workspace.yaml (or {FALLBACK_ENV}=nearest)."
            + (" Python 2 has no stand-in." if target[0] != 3 else "") + hint,
            asked=wanted, available=sorted(available, key=_series))
    minor = target[1] if len(target) > 1 else 0
    best = min(available, key=lambda v: (abs(_series(v)[1] - minor), -_series(v)[1]))
    return PythonChoice(best, asked.strip() if asked else None, nearest=True)


def asked_python(conda_python: str | None, mapping: ImageMapping | None) -> str | None:
    """The Python an environment asks for, as a conda dependency: the conda file's line wins,
    then the image's version (``python=3.9``), else ``None``."""
    if conda_python:
        return conda_python
    if mapping is not None and mapping.python:
        return f"python={mapping.python}"
    return None


_FROM_LINE = re.compile(r"^(\s*FROM\s+(?:--\S+\s+)*)(\S+)((?:\s+AS\s+(\S+))?\s*)$", re.IGNORECASE)


def rewrite_from_lines(
    dockerfile: str, replace: Callable[[ImageMapping], str]
) -> tuple[str, list[tuple[ImageMapping, str]]]:
    """``dockerfile`` with each ``FROM`` of a mapped image replaced by ``replace(mapping)``, and
    the replacements made. Stage names (``FROM build``) and ``$ARG`` images are left alone."""
    stages: set[str] = set()
    done: list[tuple[ImageMapping, str]] = []
    out = []
    for line in dockerfile.splitlines(keepends=True):
        m = _FROM_LINE.match(line.rstrip("\r\n"))
        if m is None:
            out.append(line)
            continue
        ref = m.group(2)
        mapping = None if ref.lower() in stages or "$" in ref else map_image(ref)
        if mapping is not None and mapping.local:
            mapping = None
        if m.group(4):
            stages.add(m.group(4).lower())
        if mapping is None:
            out.append(line)
            continue
        new = replace(mapping)
        done.append((mapping, new))
        end = line[len(line.rstrip("\r\n")):]
        out.append(f"{m.group(1)}{new}{m.group(3)}{end}")
    return "".join(out), done
