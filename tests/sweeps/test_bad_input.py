"""What a user gets wrong about a sweep is refused with a message that says what and how."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from jupyter_mlws import Workspace
from jupyter_mlws.errors import NotFoundError, SpecError
from tests.helpers import make_notebook

SWEEP_YAML = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: python -c "print(${{{{search_space.lr}}}})"
sampling_algorithm: {algorithm}
search_space:
  lr:
    type: {kind}
    min_value: 0.1
    max_value: 0.5
objective:
  goal: maximize
  primary_metric: accuracy
limits:
  max_total_trials: {total}
  max_concurrent_trials: {concurrent}
"""


def _yaml(tmp_path: Path, *, algorithm: str = "random", kind: str = "uniform", total: int = 4,
          concurrent: int = 2) -> str:
    path = tmp_path / "sweep.yml"
    path.write_text(SWEEP_YAML.format(algorithm=algorithm, kind=kind, total=total,
                                      concurrent=concurrent))
    return str(path)


@pytest.fixture
def nb(tmp_path: Path) -> Path:
    return make_notebook(tmp_path / "nb" / "train.ipynb",
                         "from jupyter_mlws import run\nrun.log_metric('acc', C)",
                         parameters="C = 1.0")


def test_an_unknown_search_space_type_names_the_known_ones(
        mlws: Callable[..., Result], tmp_path: Path, nb: Path) -> None:
    out = mlws("job", "sweep", str(nb), "--search", "C=gamma(1, 2)", "--metric", "acc",
               code=1).output
    assert "unknown search space type 'gamma'" in out and "loguniform" in out
    out = mlws("job", "create", "-f", _yaml(tmp_path, kind="lognorm"), code=1).output
    assert "sweep.yml:8" in out and "search_space.lr" in out and "'lognorm'" in out


def test_a_parameter_the_notebook_lacks_is_refused_before_the_sweep(
        mlws: Callable[..., Result], cli_ws: Workspace, nb: Path) -> None:
    out = mlws("job", "sweep", str(nb), "--search", "gamma=uniform(0, 1)", "--metric", "acc",
               code=1).output
    assert "Unknown parameter gamma for train.ipynb" in out and "defines: C" in out
    out = mlws("job", "sweep", str(nb), "--search", 'C=choice(1.0, "big")', "--metric", "acc",
               code=1).output
    assert "'C'" in out and "float" in out and "'big'" in out
    assert cli_ws.jobs.list() == []  # nothing was started


def test_grid_over_a_distribution_and_too_many_concurrent_trials_are_refused(
        mlws: Callable[..., Result], tmp_path: Path, cli_ws: Workspace, nb: Path) -> None:
    out = mlws("job", "create", "-f", _yaml(tmp_path, algorithm="grid"), code=1).output
    assert "grid sampling needs a choice" in out and "'lr' is uniform" in out
    out = mlws("job", "create", "-f", _yaml(tmp_path, total=2, concurrent=5), code=1).output
    assert "max_concurrent_trials (5) is above max_total_trials (2)" in out
    out = mlws("job", "sweep", str(nb), "--search", "C=choice(1.0, 2.0)", "--metric", "acc",
               "--max-trials", "2", "--max-concurrent", "5", code=1).output
    assert "max_concurrent_trials (5) is above max_total_trials (2)" in out
    assert "Traceback" not in out and "pydantic" not in out
    with pytest.raises(SpecError, match=r"max_concurrent_trials \(5\)"):
        cli_ws.jobs.submit_sweep({
            "trial": {"command": "echo ${{search_space.lr}}"},
            "search_space": {"lr": {"type": "choice", "values": [1, 2]}},
            "objective": {"goal": "maximize", "primary_metric": "a"},
            "limits": {"max_total_trials": 2, "max_concurrent_trials": 5}})
    with pytest.raises(SpecError, match=r"search_space\.nope"):
        cli_ws.jobs.submit_sweep({
            "trial": {"command": "echo ${{search_space.nope}}"},
            "search_space": {"lr": {"type": "uniform", "min_value": 0, "max_value": 1}},
            "objective": {"goal": "maximize", "primary_metric": "a"}})
    with pytest.raises(SpecError, match=r"trial\.command.*inputs\.data, which is not declared"):
        cli_ws.jobs.submit_sweep({
            "trial": {"command": "python t.py --lr ${{search_space.lr}} ${{inputs.data}}"},
            "search_space": {"lr": {"type": "uniform", "min_value": 0, "max_value": 1}},
            "objective": {"goal": "maximize", "primary_metric": "a"}})
    assert cli_ws.jobs.list() == []


def test_a_primary_metric_no_trial_logs_fails_the_sweep_saying_so(
        mlws: Callable[..., Result], cli_ws: Workspace, nb: Path, tmp_path: Path) -> None:
    out = mlws("job", "sweep", str(nb), "--search", "C=choice(0.5, 1.5)", "--metric",
               "accuracy", "--max-trials", "2", "--wait", "-o", "json", code=1)
    data = json.loads(out.stdout)
    assert data["status"] == "Failed"
    assert "no trial logged the primary metric 'accuracy' (the trials logged: acc)" in data[
        "error"]
    assert data["sweep"]["best"] is None and data["sweep"]["problem"] == data["error"]
    with pytest.raises(NotFoundError, match="has no best trial: no trial logged"):
        cli_ws.jobs.best_trial(data["id"])
    out = mlws("job", "download", data["id"], "--best", "-d", str(tmp_path), code=1).output
    assert "no trial logged the primary metric" in out
