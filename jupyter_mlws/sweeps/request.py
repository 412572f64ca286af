"""A notebook sweep as typed on a surface (``mlws job sweep``, ``%sweep``): the same
``sweepJob`` mapping a YAML file with ``trial: {notebook: ...}`` gives, and its text views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jupyter_mlws.errors import SpecError
from jupyter_mlws.sweeps.space import parse_search_option

POLICIES = {"bandit": "bandit", "median": "median_stopping",
            "median_stopping": "median_stopping", "truncation": "truncation_selection",
            "truncation_selection": "truncation_selection"}


def notebook_sweep_spec(
    notebook: str | Path, searches: Sequence[str], *, metric: str, goal: str = "maximize",
    max_trials: int = 20, max_concurrent: int | None = None, sampling: str = "random",
    seed: int | None = None, early_termination: str | None = None,
    slack_factor: float | None = None, truncation_percentage: float | None = None,
    evaluation_interval: int = 1, delay_evaluation: int = 0, environment: str | None = None,
    parameters: Mapping[str, Any] | None = None, timeout: float | None = None,
    trial_timeout: float | None = None, display_name: str | None = None,
) -> dict[str, Any]:
    """The ``sweepJob`` mapping of a notebook sweep (``--search NAME=EXPR`` each)."""
    if not searches:
        raise SpecError("a sweep needs at least one --search NAME=EXPRESSION",
                        hint="e.g. --search 'C=loguniform(-4, 2)' --search "
                        "'kernel=choice(\"rbf\", \"linear\")'")
    space = dict(parse_search_option(s) for s in searches)
    limits: dict[str, Any] = {"max_total_trials": max_trials,
                              "max_concurrent_trials": max_concurrent}
    limits.update({k: v for k, v in (("timeout", timeout), ("trial_timeout", trial_timeout))
                   if v is not None})
    nb = Path(notebook).expanduser().resolve()
    spec: dict[str, Any] = {
        "type": "sweep", "display_name": display_name or f"sweep-{nb.stem}",
        "trial": {"notebook": str(nb), "parameters": dict(parameters or {}),
                  **({"environment": environment} if environment else {})},
        "search_space": space,
        "sampling_algorithm": {"type": sampling, **({"seed": seed} if seed is not None else {})},
        "objective": {"goal": goal, "primary_metric": metric}, "limits": limits,
    }
    if early_termination:
        kind = POLICIES.get(early_termination)
        if kind is None:
            raise SpecError(f"unknown early termination policy {early_termination!r}",
                            hint="Use bandit, median or truncation.")
        policy: dict[str, Any] = {"type": kind, "evaluation_interval": evaluation_interval,
                                  "delay_evaluation": delay_evaluation}
        if kind == "bandit":
            policy["slack_factor"] = 0.1 if slack_factor is None else slack_factor
        if kind == "truncation_selection":
            policy["truncation_percentage"] = truncation_percentage or 20
        spec["early_termination"] = policy
    return spec


def sweep_text(view: Any) -> str:
    """The trials table, best first, then the best trial (or why there is none)."""
    from jupyter_mlws.cli._format import text_table

    cols = view.columns()
    rows = [[r.get(k) for k, _ in cols] for r in view.table_rows()]
    lines = [f"objective: {view.goal} {view.metric}"
             + (f" · {len(view.trials)}/{view.budget} trials" if view.budget else ""),
             text_table([h for _, h in cols], rows) if rows else "(no trials yet)"]
    if view.best is not None:
        b = view.best
        shown = ", ".join(f"{k}={v!r}" for k, v in b.params.items())
        lines.append(f"best: trial {b.number} (job {b.job}): {view.metric}={b.value:.6g} "
                     f"with {shown}")
    elif view.problem:
        lines.append(f"no best trial: {view.problem}")
    reasons = [f"  trial {t.number}: {t.reason}" for t in view.trials if t.reason]
    if reasons:
        lines += ["notes:", *reasons]
    return "\n".join(lines)
