"""The search space and the samplers, in process: Azure's semantics for each expression,
seeds, grids, early termination decisions, and TPE against random on a known function."""

from __future__ import annotations

import math
import statistics

import pytest

from jupyter_mlws.errors import SpecError
from jupyter_mlws.sweeps.sampler import Policy, Sampler
from jupyter_mlws.sweeps.space import parse_search_option, parse_space


def _draw(space: dict, n: int, algorithm: str = "random", seed: int | None = 1) -> list[dict]:
    sampler = Sampler(parse_space(space), algorithm, "minimize", seed=seed)
    out = []
    for _ in range(n):
        s = sampler.ask()
        sampler.tell(s.number, "complete", 0.0)
        out.append(s.params)
    return out


def test_search_options_read_as_azure_expressions() -> None:
    assert parse_search_option("C=loguniform(-4,2)") == (
        "C", {"type": "loguniform", "min_value": -4, "max_value": 2})
    assert parse_search_option('kernel=choice("rbf","linear")') == (
        "kernel", {"type": "choice", "values": ["rbf", "linear"]})
    assert parse_search_option("n=choice(range(1, 4))")[1]["values"] == [1, 2, 3]
    assert parse_search_option("lr=QUniform(min_value=0, max_value=1, q=0.25)")[1] == {
        "type": "quniform", "min_value": 0, "max_value": 1, "q": 0.25}
    with pytest.raises(SpecError, match="unknown search space type 'gamma'.*choice, randint"):
        parse_search_option("a=gamma(1, 2)")
    with pytest.raises(SpecError, match="not a literal"):
        parse_search_option("k=choice(rbf, linear)")
    with pytest.raises(SpecError, match="min_value .* must be below max_value"):
        parse_search_option("a=uniform(2, 1)")


def test_each_expression_draws_as_azure_defines_it() -> None:
    space = {
        "lu": {"type": "loguniform", "min_value": -4, "max_value": 2},
        "qlu": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 2},
        "qu": {"type": "quniform", "min_value": 0, "max_value": 10, "q": 5},
        "ri": {"type": "randint", "upper": 3},
        "n": {"type": "normal", "mu": 10, "sigma": 2},
        "ln": {"type": "lognormal", "mu": 0, "sigma": 0.5},
        "qn": {"type": "qnormal", "mu": 0, "sigma": 5, "q": 3},
        "c": {"type": "choice", "values": [[1, 2], "x", 3.5]},
    }
    draws = _draw(space, 400)
    assert all(math.exp(-4) <= d["lu"] <= math.exp(2) for d in draws)  # the bounds are exponents
    assert min(d["lu"] for d in draws) < 0.1 and max(d["lu"] for d in draws) > 3
    assert {d["qu"] for d in draws} <= {0, 5, 10} and {d["ri"] for d in draws} == {0, 1, 2}
    assert all(d["qlu"] % 2 == 0 for d in draws) and all(d["qn"] % 3 == 0 for d in draws)
    normals = [d["n"] for d in draws]
    assert abs(statistics.mean(normals) - 10) < 0.5 and abs(statistics.stdev(normals) - 2) < 0.5
    assert all(d["ln"] > 0 for d in draws)
    assert {repr(d["c"]) for d in draws} == {"[1, 2]", "'x'", "3.5"}


def test_the_same_seed_draws_the_same_trials_and_another_seed_others() -> None:
    space = {"x": {"type": "uniform", "min_value": -3, "max_value": 3},
             "k": {"type": "choice", "values": ["a", "b", "c"]}}
    assert _draw(space, 5, seed=7) == _draw(space, 5, seed=7)
    assert _draw(space, 5, seed=7) != _draw(space, 5, seed=8)
    assert _draw(space, 3, "bayesian", seed=7) == _draw(space, 3, "bayesian", seed=7)


def test_grid_takes_every_combination_once_and_refuses_distributions() -> None:
    space = {"a": {"type": "choice", "values": [1, 2, 3]},
             "b": {"type": "choice", "values": ["x", "y"]}}
    draws = _draw(space, 6, "grid", seed=None)
    assert sorted((d["a"], d["b"]) for d in draws) == [
        (a, b) for a in (1, 2, 3) for b in ("x", "y")]
    with pytest.raises(SpecError, match="grid sampling needs a choice.*'lr' is uniform"):
        Sampler(parse_space({"lr": {"type": "uniform", "min_value": 0, "max_value": 1}}),
                "grid", "minimize")


def test_unknown_types_and_missing_fields_are_named() -> None:
    with pytest.raises(SpecError, match="search_space.lr.*unknown search space type 'weird'"):
        parse_space({"lr": {"type": "weird"}})
    with pytest.raises(SpecError, match="normal needs sigma"):
        parse_space({"a": {"type": "normal", "mu": 0}})
    with pytest.raises(SpecError, match="randint: upper"):
        parse_space({"a": {"type": "randint", "upper": 0}})


def _branin(x: float, y: float) -> float:
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


def _best_of(algorithm: str, seed: int, budget: int) -> float:
    space = {"x": {"type": "uniform", "min_value": -5, "max_value": 10},
             "y": {"type": "uniform", "min_value": 0, "max_value": 15}}
    sampler = Sampler(parse_space(space), algorithm, "minimize", seed=seed)
    best = math.inf
    for _ in range(budget):
        s = sampler.ask()
        value = _branin(s.params["x"], s.params["y"])
        sampler.tell(s.number, "complete", value)
        best = min(best, value)
    return best


def test_bayesian_beats_random_on_branin_for_the_same_budget() -> None:
    seeds = range(6)
    tpe = statistics.mean(_best_of("bayesian", s, 40) for s in seeds)
    rnd = statistics.mean(_best_of("random", s, 40) for s in seeds)
    assert tpe < rnd, (tpe, rnd)  # the minimum of Branin is 0.398


def _run(policy: Policy, goal: str, finished: list[list[float]], running: list[float]
         ) -> str | None:
    """Finish trials with these intermediate values, then check one reporting ``running``."""
    space = parse_space({"a": {"type": "uniform", "min_value": 0, "max_value": 1}})
    sampler = Sampler(space, "random", goal, seed=0, policy=policy)
    for values in finished:
        s = sampler.ask()
        for i, v in enumerate(values, start=1):
            sampler.report(s.number, i, v)
        sampler.tell(s.number, "complete", values[-1])
    s = sampler.ask()
    for i, v in enumerate(running, start=1):
        sampler.report(s.number, i, v)
    return sampler.check(s.number)


def test_bandit_median_and_truncation_stop_what_they_should() -> None:
    bandit = Policy("bandit", slack_factor=0.2)
    assert _run(bandit, "maximize", [[0.8, 0.9]], [0.6]) is not None  # 0.6 * 1.2 < 0.8
    assert _run(bandit, "maximize", [[0.8, 0.9]], [0.7]) is None      # 0.7 * 1.2 >= 0.8
    assert _run(Policy("bandit", slack_amount=1.0), "minimize", [[2.0]], [3.5]) is not None
    assert _run(Policy("bandit", slack_amount=1.0), "minimize", [[2.0]], [2.9]) is None
    late = Policy("bandit", slack_factor=0.0, evaluation_interval=2, delay_evaluation=2)
    assert _run(late, "maximize", [[1.0, 1.0]], [0.1]) is None        # interval 1: not yet
    assert _run(late, "maximize", [[1.0, 1.0]], [0.1, 0.1]) is not None
    median = Policy("median_stopping")
    assert _run(median, "minimize", [[1.0], [2.0], [3.0]], [2.5]) is not None
    assert _run(median, "minimize", [[1.0], [2.0], [3.0]], [1.5]) is None
    trunc = Policy("truncation_selection", truncation_percentage=50)
    assert _run(trunc, "maximize", [[0.1], [0.2], [0.3], [0.4]], [0.15]) is not None
    assert _run(trunc, "maximize", [[0.1], [0.2], [0.3], [0.4]], [0.35]) is None
