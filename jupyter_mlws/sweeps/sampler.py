"""Sampling and early termination over Optuna (ask/tell, one in-memory study per sweep run).

Optuna is a well-kept optimisation library: its ``GridSampler``, ``RandomSampler(seed)``,
``QMCSampler`` (Azure's ``rule: sobol``) and ``TPESampler`` (``bayesian``) choose the trials;
its ``MedianPruner`` backs ``median_stopping`` and ``PercentilePruner`` backs
``truncation_selection``. Azure's bandit policy (stop a trial whose value at an interval is not
within the slack of the best trial's value at that interval) has no Optuna pruner, so it is
the short check in :meth:`Sampler._bandit`.

Every policy is evaluated where Azure evaluates it: at each interval that is a multiple of
``evaluation_interval`` and at least ``delay_evaluation``. An interval is the ``step`` a trial
logged the primary metric with, or else the count of values it logged so far (1, 2, ...).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from jupyter_mlws.errors import SpecError
from jupyter_mlws.sweeps.space import Expression


@dataclass
class Suggestion:
    """A trial to run: its number, the values it gets, Optuna's internal values."""

    number: int
    params: dict[str, Any]
    internal: dict[str, Any]


@dataclass
class Policy:
    """An early termination policy (Azure ``early_termination``)."""

    type: str
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    slack_factor: float | None = None
    slack_amount: float | None = None
    truncation_percentage: float | None = None

    def applies_at(self, interval: int) -> bool:
        every = max(1, self.evaluation_interval)
        return interval >= self.delay_evaluation and interval % every == 0


def _grid_sampler_class() -> Any:
    from optuna.samplers import GridSampler

    class AskTellGrid(GridSampler):
        """GridSampler whose end of grid does not call ``study.stop()`` (which only works
        inside ``study.optimize``); the sweep stops after ``grid_size`` trials itself."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGrid


def check_grid(space: list[Expression]) -> int:
    """The grid's size; a continuous parameter is an error naming it."""
    size = 1
    for e in space:
        if e.continuous:
            raise SpecError(
                f"grid sampling needs a choice for every parameter, but {e.name!r} is "
                f"{e.type} (a distribution has no finite grid)",
                field=f"search_space.{e.name}",
                hint="Use sampling_algorithm random or bayesian, or list the values: "
                f"{e.name}: {{type: choice, values: [...]}}.")
        size *= len(e.fields["values"])
    return size


@dataclass
class Sampler:
    """Asks Optuna for trials, feeds it their intermediate and final values."""

    space: list[Expression]
    algorithm: str
    goal: str
    seed: int | None = None
    rule: str = "random"
    policy: Policy | None = None
    _trials: dict[int, Any] = field(default_factory=dict)
    _values: dict[int, dict[int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        self._optuna = optuna
        direction = (optuna.study.StudyDirection.MAXIMIZE if self.goal == "maximize"
                     else optuna.study.StudyDirection.MINIMIZE)
        self.study = optuna.create_study(direction=direction, sampler=self._sampler(),
                                         pruner=self._pruner())

    def _sampler(self) -> Any:
        samplers = self._optuna.samplers
        if self.algorithm == "grid":
            check_grid(self.space)
            grid = {e.name: list(range(len(e.fields["values"]))) for e in self.space}
            return _grid_sampler_class()(grid, seed=self.seed)
        if self.algorithm == "bayesian":
            return samplers.TPESampler(seed=self.seed)
        if self.rule == "sobol":
            return samplers.QMCSampler(qmc_type="sobol", seed=self.seed)
        return samplers.RandomSampler(seed=self.seed)

    def _pruner(self) -> Any:
        pruners = self._optuna.pruners
        kind = self.policy.type if self.policy else None
        if kind == "median_stopping":  # the policy's intervals are checked before asking
            return pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0, interval_steps=1)
        if kind == "truncation_selection" and self.policy is not None:
            keep = 100.0 - float(self.policy.truncation_percentage or 0)
            return pruners.PercentilePruner(keep, n_startup_trials=0, n_warmup_steps=0,
                                            interval_steps=1)
        return pruners.NopPruner()

    @property
    def grid_size(self) -> int | None:
        return check_grid(self.space) if self.algorithm == "grid" else None

    def ask(self) -> Suggestion:
        """The next trial's values (drawn now, so a seed gives the same trials in order)."""
        trial = self.study.ask()
        params: dict[str, Any] = {}
        internal: dict[str, Any] = {}
        for e in self.space:
            params[e.name], internal[e.name] = e.suggest(trial)
        self._trials[trial.number] = trial
        self._values[trial.number] = {}
        return Suggestion(trial.number, params, internal)

    def report(self, number: int, interval: int, value: float) -> None:
        """Take a trial's value of the primary metric at an interval."""
        trial = self._trials.get(number)
        if trial is None or interval in self._values[number]:
            return
        self._values[number][interval] = value
        trial.report(value, interval)

    def check(self, number: int) -> str | None:
        """Whether the policy stops a running trial at its latest interval: the reason, or
        ``None`` (checked again on every poll, as other trials report)."""
        trial = self._trials.get(number)
        values = self._values.get(number)
        if self.policy is None or trial is None or not values:
            return None
        interval = max(values)
        if not self.policy.applies_at(interval):
            return None
        value = values[interval]
        if self.policy.type == "bandit":
            return self._bandit(number, interval, value)
        if trial.should_prune():
            what = ("median_stopping: worse than the median of the finished trials"
                    if self.policy.type == "median_stopping" else
                    f"truncation_selection: in the worst "
                    f"{self.policy.truncation_percentage:g}% of the finished trials")
            return f"{what} at interval {interval} ({value:.6g})"
        return None

    def _bandit(self, number: int, interval: int, value: float) -> str | None:
        assert self.policy is not None
        others = [v[interval] for n, v in self._values.items() if n != number and interval in v]
        if not others:
            return None
        maximize = self.goal == "maximize"
        best = max(others) if maximize else min(others)
        if self.policy.slack_amount is not None:
            slack = float(self.policy.slack_amount)
            bound = best - slack if maximize else best + slack
        else:
            factor = float(self.policy.slack_factor or 0.0)
            bound = best / (1 + factor) if maximize else best * (1 + factor)
        if (value < bound) if maximize else (value > bound):
            return (f"bandit: {value:.6g} at interval {interval} is not within the slack of the "
                    f"best trial's {best:.6g} (bound {bound:.6g})")
        return None

    def tell(self, number: int, state: str, value: float | None = None) -> None:
        """A trial ended: ``complete`` (with its value), ``pruned`` or ``fail``."""
        trial = self._trials.pop(number, None)
        if trial is None:
            return
        states = self._optuna.trial.TrialState
        if state == "complete" and value is not None:
            self.study.tell(trial, value)
        elif state == "pruned":
            self.study.tell(trial, state=states.PRUNED)
        else:
            self.study.tell(trial, state=states.FAIL)

    def replay(self, params: dict[str, Any], state: str, value: float | None,
               intermediate: dict[int, float]) -> None:
        """Add a trial that ran before (a resumed sweep): samplers and pruners see it."""
        states = self._optuna.trial.TrialState
        dists = {e.name: e.distribution() for e in self.space}
        attrs: dict[str, Any] = {}
        if self.algorithm == "grid":  # the grid point it took, as GridSampler numbers them
            names = sorted(e.name for e in self.space)
            grids = list(getattr(self.study.sampler, "_all_grids", []))
            combo = tuple(params[n] for n in names)
            if combo in grids:
                attrs = {"grid_id": grids.index(combo), "search_space": {
                    e.name: list(range(len(e.fields["values"]))) for e in self.space}}
        frozen = self._optuna.trial.create_trial(
            params=params, distributions=dists, system_attrs=attrs,
            intermediate_values={int(k): v for k, v in intermediate.items()},
            state={"complete": states.COMPLETE, "pruned": states.PRUNED}.get(state, states.FAIL),
            value=value if state == "complete" else None)
        self.study.add_trial(frozen)
        number = self.study.trials[-1].number
        self._values[number] = {int(k): v for k, v in intermediate.items()}
