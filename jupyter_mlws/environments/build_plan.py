"""What an environment is built from here: the offline base, the Python, the pip requirements.

Both builders ask :func:`plan_build` at build time (the definition and its hash are untouched):
the image is mapped (:mod:`.image_map`), the conda file translated to PyPI
(:mod:`.conda_pypi`), the Python chosen (with the user's fallback rule), and every decision
written as a note for the build log and the build record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from jupyter_mlws.assets.environment import EnvironmentSpec
from jupyter_mlws.environments.conda_pypi import (
    CondaTranslation,
    missing_on_index,
    no_pypi_error,
    translate_conda,
)
from jupyter_mlws.environments.image_map import (
    DEBIAN_PYTHONS,
    DEFAULT_PYTHON,
    ImageMapping,
    PythonChoice,
    asked_python,
    choose_python,
    map_image,
    python_base,
)
from jupyter_mlws.errors import PythonUnavailableError

__all__ = ["BuildPlan", "check_index", "plan_build"]


@dataclass
class BuildPlan:
    """How one environment is built here.

    ``base`` is the offline base image (Docker) to build from; ``python`` the series chosen;
    ``requirements`` everything pip installs (conda dependencies translated, then the ``pip:``
    list, then ``pip_requirements``); ``notes`` what was mapped, translated or dropped.
    """

    mapping: ImageMapping | None
    python: PythonChoice
    base: str
    requirements: list[str]
    translation: CondaTranslation | None = None
    notes: list[str] = field(default_factory=list)
    #: ``requirements`` are the hash's lock (installed with ``--no-deps``), see :mod:`.locks`.
    locked: bool = False
    #: Install with uv inside the image build: the host's uv binary and its environment
    #: (index settings from this machine's pip configuration); ``None``: pip.
    uv_binary: str | None = None
    uv_env: dict[str, str] = field(default_factory=dict)


def plan_build(
    spec: EnvironmentSpec,
    *,
    available: Iterable[str] | None = None,
    default: str = DEFAULT_PYTHON,
    allow_nearest: bool = False,
    where: str = "this machine's offline bases",
    find_other: Callable[[str], str | None] | None = None,
    venv: bool = False,
) -> BuildPlan:
    """The plan of ``spec`` (see the module docstring).

    ``available`` are the Python series there are (default: the Debian bases); ``find_other``
    may provide a series outside them (e.g. ``uv``) before the fallback rule applies. ``venv``:
    the plan is for a virtualenv (no base image).

    Conda dependencies with no PyPI equivalent are kept in ``translation.problems``;
    :func:`check_index` raises them (with those the index lacks).

    Raises:
        PythonUnavailableError: the Python asked for is not available and no fallback allowed.
    """
    mapping = map_image(spec.image)
    translation = translate_conda(spec.conda_file, strict=False) if spec.conda_file else None
    asked = asked_python(translation.python if translation else None, mapping)
    series = list(available or DEBIAN_PYTHONS)
    if translation is not None and translation.python and asked == translation.python:
        who = f"The conda file's {asked}"
    else:
        who = f"The image {spec.image}"
    hint = (" Or run it on a Docker compute, whose offline bases give Python "
            f"{', '.join(DEBIAN_PYTHONS)}." if venv else "")
    try:
        choice = choose_python(asked, series, default=default, allow_nearest=False, where=where)
    except PythonUnavailableError:
        other = find_other(asked) if find_other and asked else None
        if other is not None:
            choice = PythonChoice(other, asked)
        else:
            choice = choose_python(asked, series, default=default, allow_nearest=allow_nearest,
                                   where=where, who=who, hint=hint)
    requirements = (list(translation.from_conda) if translation else []) + spec.pip_packages()
    base = python_base(choice.version) if choice.version in DEBIAN_PYTHONS and not venv else ""
    plan = BuildPlan(mapping, choice, base, requirements, translation)
    plan.notes = _notes(spec, plan, asked)
    return plan


def _notes(spec: EnvironmentSpec, plan: BuildPlan, asked: str | None) -> list[str]:
    notes = []
    mapping = plan.mapping
    if mapping is not None and mapping.origin != "the default base":
        target = plan.base or f"a venv of Python {plan.python.version}"
        notes.append(f"image {mapping.image} ({mapping.origin}) -> {target}")
        if mapping.note:
            notes.append(f"image {mapping.image}: {mapping.note}")
    if (mapping is not None and mapping.python and plan.translation is not None
            and plan.translation.python and asked == plan.translation.python
            and not plan.translation.python.replace(" ", "").endswith(mapping.python)):
        notes.append(f"the conda file's {plan.translation.python} wins over the image's "
                     f"Python {mapping.python}")
    line = plan.python.note()
    if line:
        notes.append(line)
    if plan.translation is not None:
        if spec.conda_file and (plan.translation.changed or plan.translation.from_conda):
            notes.append("conda file translated to PyPI (conda channels are not reachable): "
                         + (", ".join(plan.translation.from_conda) or "nothing to install"))
        notes.extend(plan.translation.notes)
    return notes


def check_index(plan: BuildPlan, index_url: str | None) -> None:
    """Ask the package index for every requirement made from a conda dependency.

    Raises:
        CondaTranslationError: naming every one the index does not have.
    """
    if plan.translation is None:
        return
    names = {_name(r): r for r in plan.translation.from_conda}
    missing = missing_on_index(list(names), index_url)
    origin = {req: dep for dep, req in plan.translation.translated}
    listed = [f"{origin.get(names[n], names[n])} (the package index has no {n!r})"
              for n in missing]
    if plan.translation.problems or listed:
        raise no_pypi_error(plan.translation.problems + listed)


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name
