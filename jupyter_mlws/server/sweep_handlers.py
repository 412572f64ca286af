"""REST routes of sweeps: ``POST /sweeps`` submits a notebook sweep; a sweep's trials table is
part of ``GET /jobs/{id}`` (see :func:`sweep_detail`).

The notebook is confined to the server's root folder like ``POST /jobs``; search expressions
are the text ``mlws job sweep --search`` takes (``loguniform(-4, 2)``, ``choice("a", "b")``), read
by the same parser; fixed parameters are Python literals read by the CLI's ``-p`` parser. A
refused expression or value answers 400 with ``details: {field, name}`` so a form can show it
beside its input.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from pydantic import Field

from jupyter_mlws.errors import SpecError, ValidationError
from jupyter_mlws.server import API_PATH
from jupyter_mlws.server.handlers import MlwsHandler, _literals
from jupyter_mlws.server.wire import Body, parse_body


class NotebookSweepSubmission(Body):
    """``POST /sweeps``: the fields of ``mlws job sweep``."""

    notebook: str = Field(min_length=1, description="Path relative to the server root.")
    search: dict[str, str] = Field(min_length=1, description="Parameter -> search expression.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    literal_parameters: dict[str, str] = Field(default_factory=dict)
    metric: str = Field(min_length=1, max_length=250)
    goal: Literal["maximize", "minimize"] = "maximize"
    max_trials: int = Field(20, ge=1, le=10_000)
    max_concurrent: int | None = Field(None, ge=1)
    sampling: Literal["random", "grid", "bayesian"] = "random"
    seed: int | None = None
    early_termination: Literal["bandit", "median", "truncation"] | None = None
    slack_factor: float | None = Field(None, ge=0)
    truncation_percentage: float | None = Field(None, gt=0, lt=100)
    evaluation_interval: int = Field(1, ge=1)
    delay_evaluation: int = Field(0, ge=0)
    environment: str | None = None
    compute: str | None = None
    experiment: str | None = None
    display_name: str | None = None
    timeout: float | None = Field(None, gt=0)
    trial_timeout: float | None = Field(None, gt=0)


def _searches(search: dict[str, str], fixed: dict[str, Any]) -> list[str]:
    """``NAME=EXPR`` texts, each checked by the sweep's parser; a refused one names itself in
    ``details`` (``{"field": "search", "name": "C"}``)."""
    from jupyter_mlws.sweeps.space import parse_search_option

    out = []
    for name, expr in search.items():
        try:
            if not expr.strip():
                raise SpecError(f"the search expression of {name!r} is empty",
                                hint="e.g. uniform(0, 1) or choice(1, 2, 3); leave the "
                                "parameter out to keep its value fixed.")
            if name in fixed:
                raise ValidationError(f"{name!r} is both swept and given a fixed value.",
                                      hint="Give it either a search expression or a value.")
            text = f"{name}={expr}"
            try:
                parse_search_option(text)
            except SpecError as exc:  # said as the REST caller wrote it, not as --search
                raw = exc.message.split(": ", 1)[1] if exc.field else exc.message
                raise SpecError(f"the search expression of {name!r} ({expr.strip()!r}): "
                                f"{raw.rstrip('.')}.", hint=exc.hint) from None
        except ValidationError as exc:
            exc.details.update(field="search", name=name)
            raise
        out.append(text)
    return out


def sweep_spec(body: NotebookSweepSubmission, notebook: Any) -> Any:
    """The checked ``SweepJobSpec`` of a submission (every problem a typed 400)."""
    from jupyter_mlws.assets.yaml_io import validate_spec
    from jupyter_mlws.sweeps.request import notebook_sweep_spec
    from jupyter_mlws.sweeps.spec import SweepJobSpec

    fixed = {**body.parameters, **_literals("literal_parameters", body.literal_parameters)}
    spec = notebook_sweep_spec(
        notebook, _searches(body.search, fixed), metric=body.metric, goal=body.goal,
        max_trials=body.max_trials,
        max_concurrent=body.max_concurrent or min(2, body.max_trials),
        sampling=body.sampling, seed=body.seed, early_termination=body.early_termination,
        slack_factor=body.slack_factor, truncation_percentage=body.truncation_percentage,
        evaluation_interval=body.evaluation_interval, delay_evaluation=body.delay_evaluation,
        environment=body.environment, parameters=fixed, timeout=body.timeout,
        trial_timeout=body.trial_timeout, display_name=body.display_name)
    return validate_spec(SweepJobSpec, spec)


class SweepsHandler(MlwsHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = parse_body(NotebookSweepSubmission, self.request.body)
        state = self.state
        notebook = self.under_root(body.notebook, "notebook")

        def submit() -> Any:
            from jupyter_mlws.errors import NotFoundError

            if not notebook.is_file():
                raise NotFoundError(f"There is no notebook {body.notebook!r} in the server's "
                                    "root folder.", hint="Give it as the file browser shows it.")
            spec = sweep_spec(body, notebook)
            return state.workspace.jobs.submit_sweep(
                spec, base_dir=notebook.parent, compute=body.compute or None,
                experiment=body.experiment)

        job = await self.call(submit)
        self.set_header("Location", url_path_join(self.base_url, API_PATH, "jobs", job.id))
        self.send(job.public_dict(), status=201)


def finite(value: Any) -> Any:
    """JSON-safe numbers: NaN and infinities (a diverged loss) become ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def sweep_detail(ws: Any, job_id: str) -> dict[str, Any]:
    """The sweep's trials sorted by its objective, the best trial, and why there is none
    (``ws.jobs.sweep_view``), as the ``sweep`` field of a sweep job's detail."""
    return dict(finite(ws.jobs.sweep_view(job_id).public_dict()))


def sweep_routes() -> list[tuple[str, type[MlwsHandler]]]:
    """The sweep URL patterns, relative to ``{base_url}mlws/api``."""
    return [(r"/sweeps", SweepsHandler)]
