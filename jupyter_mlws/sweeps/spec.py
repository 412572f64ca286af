"""The sweep job spec in the Azure ML CLI v2 ``sweepJob`` shape (plus notebook trials).

    type: sweep
    trial: {command: python train.py --lr ${{search_space.lr}}, code: src, environment: ...}
    # or trial: ./train_component.yml      (a component: search space names fill its inputs)
    # or trial: {notebook: train.ipynb}    (the search space fills its parameters cell)
    search_space: {lr: {type: loguniform, min_value: -6, max_value: -1}}
    sampling_algorithm: random            # or {type: random, seed: 1} / grid / bayesian
    objective: {goal: maximize, primary_metric: accuracy}
    limits: {max_total_trials: 20, max_concurrent_trials: 2, timeout: 3600, trial_timeout: 600}
    early_termination: {type: bandit, slack_factor: 0.1, evaluation_interval: 1}
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from jupyter_mlws.assets.base import SpecModel
from jupyter_mlws.assets.environment import env_var_mapping
from jupyter_mlws.assets.job import JobInput, JobOutput, _coerce_inputs, _coerce_outputs, _JobMeta

NOOP_TRIAL_FIELDS = frozenset({"resources", "distribution", "identity", "services",
                               "queue_settings"})


class SweepObjective(SpecModel):
    goal: Literal["maximize", "minimize"]
    primary_metric: str = Field(min_length=1, max_length=250)

    @field_validator("goal", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class SweepLimits(SpecModel):
    max_total_trials: int = Field(default=1000, ge=1)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    trial_timeout: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _concurrency(self) -> SweepLimits:
        if self.max_concurrent_trials and self.max_concurrent_trials > self.max_total_trials:
            raise ValueError(
                f"max_concurrent_trials ({self.max_concurrent_trials}) is above "
                f"max_total_trials ({self.max_total_trials}): at most "
                f"{self.max_total_trials} trials can run; lower max_concurrent_trials")
        return self

    @property
    def concurrent(self) -> int:
        return self.max_concurrent_trials or self.max_total_trials


class SamplingAlgorithm(SpecModel):
    type: Literal["random", "grid", "bayesian"] = "random"
    seed: int | None = None
    rule: Literal["random", "sobol"] = "random"

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class EarlyTermination(SpecModel):
    type: Literal["bandit", "median_stopping", "truncation_selection"]
    evaluation_interval: int = Field(default=1, ge=0)
    delay_evaluation: int = Field(default=0, ge=0)
    slack_factor: float | None = Field(default=None, ge=0)
    slack_amount: float | None = Field(default=None, ge=0)
    truncation_percentage: float | None = Field(default=None, gt=0, lt=100)
    exclude_finished_jobs: bool = False

    @model_validator(mode="after")
    def _needs(self) -> EarlyTermination:
        if self.type == "bandit" and self.slack_factor is None and self.slack_amount is None:
            raise ValueError("a bandit policy needs slack_factor or slack_amount")
        if self.type == "truncation_selection" and self.truncation_percentage is None:
            raise ValueError("a truncation_selection policy needs truncation_percentage "
                             "(the percentage of trials to cancel at each interval)")
        return self


class SweepTrial(SpecModel):
    """The job template of each trial: a command or a notebook."""

    command: str | None = None
    notebook: str | None = None
    code: str | None = None
    environment: str | dict[str, Any] | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    #: Fixed parameters of a notebook trial (the search space adds the swept ones).
    parameters: dict[str, Any] = Field(default_factory=dict)
    type: Literal["command", "notebook"] | None = None

    _env_vars = field_validator("environment_variables", mode="before")(
        classmethod(lambda cls, v: env_var_mapping(v)))

    @model_validator(mode="after")
    def _what(self) -> SweepTrial:
        if bool(self.command) == bool(self.notebook):
            raise ValueError("a trial needs exactly one of command or notebook (or give the "
                             "trial as a component: trial: ./train.yml)")
        return self


class SweepJobSpec(_JobMeta):
    type: Literal["sweep"] = "sweep"
    trial: str | SweepTrial
    search_space: dict[str, Any]
    sampling_algorithm: SamplingAlgorithm = Field(default_factory=SamplingAlgorithm)
    objective: SweepObjective
    limits: SweepLimits = Field(default_factory=SweepLimits)
    early_termination: EarlyTermination | None = None
    inputs: dict[str, JobInput] = Field(default_factory=dict)
    outputs: dict[str, JobOutput] = Field(default_factory=dict)
    ignored_fields: ClassVar[frozenset[str]] = NOOP_TRIAL_FIELDS

    _coerce = field_validator("inputs", mode="before")(
        classmethod(lambda cls, v: _coerce_inputs(v)))
    _coerce_out = field_validator("outputs", mode="before")(
        classmethod(lambda cls, v: _coerce_outputs(v)))

    @field_validator("sampling_algorithm", mode="before")
    @classmethod
    def _short_form(cls, value: object) -> object:
        return {"type": value} if isinstance(value, str) else value

    @field_validator("trial", mode="before")
    @classmethod
    def _component_ref(cls, value: object) -> object:
        if isinstance(value, str) and value.startswith("file:"):
            return value[len("file:"):]
        return value
