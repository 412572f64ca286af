"""Sweeps end to end on local compute: real trial processes and papermill kernels."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import Any

from click.testing import Result

from jupyter_mlws import Workspace
from jupyter_mlws.sweeps.run import EARLY
from tests.helpers import make_notebook
from tests.sweeps.conftest import SPECS

NOTEBOOK_CODE = """
from jupyter_mlws import run
assert isinstance(C, float) and isinstance(kernel, str) and isinstance(n, int), (C, kernel, n)
run.log_param("types", f"{type(C).__name__},{type(kernel).__name__},{type(n).__name__}")
run.log_metric("accuracy", C * (2 if kernel == "linear" else 1) + n)
"""


def _trials(view: dict[str, Any]) -> list[dict[str, Any]]:
    return view["sweep"]["trials"]


def _wait_for(what: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_grid_sweep_of_a_notebook_runs_every_combination_with_typed_parameters(
        mlws: Callable[..., Result], cli_ws: Workspace, tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "nb" / "train.ipynb", NOTEBOOK_CODE,
                       parameters='C = 1.0\nkernel = "rbf"\nn = 0')
    out = mlws("job", "sweep", str(nb), "--search", "C=choice(0.5, 2.0)",
               "--search", 'kernel=choice("rbf", "linear")', "--metric", "accuracy",
               "--sampling", "grid", "-p", "n", "1", "--max-concurrent", "2", "--wait",
               "-o", "json")
    data = json.loads(out.output)
    assert data["status"] == "Completed", data.get("error")
    trials = _trials(data)
    assert sorted((t["params"]["C"], t["params"]["kernel"]) for t in trials) == sorted(
        product([0.5, 2.0], ["rbf", "linear"]))
    values = [t["value"] for t in trials]
    assert values == sorted(values, reverse=True) == [5.0, 3.0, 2.0, 1.5]  # best first
    assert data["sweep"]["best"]["params"] == {"C": 2.0, "kernel": "linear"}
    for t in trials:
        assert cli_ws.jobs.get(t["job"]).parent_id == data["id"]
        params = cli_ws.jobs.params(t["job"])
        assert params["types"] == "float,str,int" and params["n"] == 1
    shown = mlws("job", "show", data["id"]).output
    assert "best: trial" in shown and "accuracy=5" in shown and "Completed" in shown
    got = mlws("job", "download", data["id"], "--best", "-d", str(tmp_path / "dl")).output
    assert Path(got.strip()).name == data["sweep"]["best"]["job"]


def test_random_sweep_of_an_azure_command_trial_repeats_with_its_seed(
        mlws: Callable[..., Result], cli_ws: Workspace) -> None:
    runs = []
    for _ in range(2):
        created = json.loads(mlws("job", "create", "-f", str(SPECS / "sweep-random.yml"),
                                  "--wait", "-o", "json").stdout)
        assert created["status"] == "Completed", created.get("error")
        view = cli_ws.jobs.sweep_view(created["id"])
        runs.append(sorted((t.number, t.params["x"], t.params["y"]) for t in view.trials))
        assert len(view.trials) == 4 and view.best is not None
        assert view.best.value == min(t.value for t in view.trials if t.value is not None)
        for t in view.trials:  # the loss the trial computed from the values it was given
            expected = (t.params["x"] - 1) ** 2 + (t.params["y"] + 2) ** 2
            assert abs(t.value - expected) < 1e-6
    assert runs[0] == runs[1]
    assert len({x for _, x, _ in runs[0]}) == 4


def test_bayesian_sweep_of_a_command_trial_runs_end_to_end(
        mlws: Callable[..., Result], cli_ws: Workspace) -> None:
    created = json.loads(mlws("job", "create", "-f", str(SPECS / "sweep-bayesian.yml"),
                              "--wait", "-o", "json").stdout)
    assert created["status"] == "Completed", created.get("error")
    view = cli_ws.jobs.sweep_view(created["id"])
    assert [t.status for t in view.trials] == ["Completed"] * 4
    assert all(float(t.params["y"]).is_integer() for t in view.trials)  # quniform, q=1
    assert view.best is not None and created["error"] is None


def test_bandit_cancels_the_trials_outside_the_slack(
        mlws: Callable[..., Result], cli_ws: Workspace) -> None:
    cli_ws.computes.create("wide", type="local", max_concurrent_jobs=4)
    created = json.loads(mlws("job", "create", "-f", str(SPECS / "sweep-bandit.yml"),
                              "--wait", "-o", "json").stdout)
    assert created["status"] == "Completed", created.get("error")
    by_x = {t.params["x"]: t for t in cli_ws.jobs.sweep_view(created["id"]).trials}
    assert by_x[1].status == by_x[1.2].status == "Completed"
    assert by_x[3].status == by_x[4].status == EARLY, {x: t.status for x, t in by_x.items()}
    for x in (3, 4):
        child = cli_ws.jobs.get(by_x[x].job)
        assert child.status == "Canceled" and child.error.startswith("early termination (bandit")
        assert len(cli_ws.jobs.metrics(child.id)) == 1  # stopped before its second interval


def test_median_stopping_cancels_a_trial_worse_than_the_median(
        mlws: Callable[..., Result], cli_ws: Workspace) -> None:
    created = json.loads(mlws("job", "create", "-f", str(SPECS / "sweep-median.yml"),
                              "--wait", "-o", "json").stdout)
    assert created["status"] == "Completed", created.get("error")
    trials = sorted(cli_ws.jobs.sweep_view(created["id"]).trials, key=lambda t: t.number)
    completed: list[float] = []
    expected = []
    for t in trials:  # one at a time: each is compared with the trials completed before it
        loss = (t.params["x"] - 1) ** 2
        stop = bool(completed) and loss > statistics.median(completed)
        expected.append(EARLY if stop else "Completed")
        if not stop:
            completed.append(loss)
    assert EARLY in expected  # the grid's order makes the policy act
    assert [t.status for t in trials] == expected


def test_cancel_stops_the_trials_and_resume_runs_only_the_rest(
        mlws: Callable[..., Result], cli_ws: Workspace, tmp_path: Path) -> None:
    spec = {"type": "sweep", "sampling_algorithm": "grid",
            "trial": {"code": str(SPECS / "src"),
                      "command": "python sweep_objective.py --x ${{search_space.x}} "
                                 "--steps 2 --pause ${{search_space.pause}}"},
            "search_space": {"x": {"type": "choice", "values": [1, 2, 3, 4, 5]},
                             "pause": {"type": "choice", "values": [0.5]}},
            "objective": {"goal": "minimize", "primary_metric": "loss"},
            "limits": {"max_total_trials": 5, "max_concurrent_trials": 1}}
    job = cli_ws.jobs.submit_sweep(spec)
    _wait_for(lambda: sum(t.status == "Completed"
                          for t in cli_ws.jobs.sweep_view(job.id).trials) >= 2)
    mlws("job", "cancel", job.id)
    ended = cli_ws.jobs.wait(job.id, timeout=60)
    assert ended.status == "Canceled"
    view = cli_ws.jobs.sweep_view(job.id)
    for t in view.trials:
        assert cli_ws.jobs.get(t.job).done
    started = len(view.trials)
    time.sleep(1.0)  # nothing starts once canceled
    assert len(cli_ws.jobs.children(job.id)) == started
    done_before = {t.params["x"] for t in view.trials if t.status == "Completed"}
    assert started < 5
    resumed = json.loads(mlws("job", "rerun", job.id, "--resume", "-o", "json").stdout)
    final = cli_ws.jobs.wait(resumed["id"], timeout=120)
    assert final.status == "Completed", final.error
    trials = cli_ws.jobs.sweep_view(final.id).trials
    assert sorted(t.params["x"] for t in trials) == [1, 2, 3, 4, 5]  # each value once
    carried = {t.params["x"] for t in trials if t.carried_from == job.id}
    assert carried == done_before
    assert len(cli_ws.jobs.children(final.id)) == 5 - len(done_before)


def test_a_dead_sweep_runner_is_reaped_and_resume_keeps_the_trial_that_finished(
        mlws: Callable[..., Result], cli_ws: Workspace) -> None:
    import os
    import signal

    spec = {"type": "sweep", "trial": {"code": str(SPECS / "src"),
            "command": "python sweep_objective.py --x ${{search_space.x}} --steps 2 --pause 3"},
            "search_space": {"x": {"type": "choice", "values": [2]}},
            "objective": {"goal": "minimize", "primary_metric": "loss"},
            "limits": {"max_total_trials": 1}}
    job = cli_ws.jobs.submit_sweep(spec)
    pid = _wait_for(lambda: cli_ws.jobs.get(job.id).runner_pid)
    trial = _wait_for(lambda: cli_ws.jobs.sweep_view(job.id).trials)[0]
    os.kill(pid, signal.SIGKILL)

    def reaped() -> bool:
        return job.id in cli_ws.jobs.reap_orphans() or cli_ws.jobs.get(job.id).done
    _wait_for(reaped, timeout=30)
    dead = cli_ws.jobs.get(job.id)
    assert dead.status == "Failed" and "runner" in (dead.error or "")
    assert cli_ws.jobs.wait(str(trial.job), timeout=60).status == "Completed"  # it ran on
    resumed = json.loads(mlws("job", "rerun", job.id, "--resume", "-o", "json").stdout)
    final = cli_ws.jobs.wait(resumed["id"], timeout=60)
    assert final.status == "Completed", final.error
    (kept,) = cli_ws.jobs.sweep_view(final.id).trials
    assert kept.job == trial.job and kept.carried_from == job.id and kept.value == 1.0
    assert cli_ws.jobs.children(final.id) == []  # nothing left to run


def test_the_sweep_timeout_cancels_the_sweep_and_its_trials(cli_ws: Workspace) -> None:
    spec = {"type": "sweep", "trial": {"code": str(SPECS / "src"),
            "command": "python sweep_objective.py --x ${{search_space.x}} --steps 2 --pause 60"},
            "search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
            "objective": {"goal": "minimize", "primary_metric": "loss"},
            "limits": {"max_total_trials": 4, "max_concurrent_trials": 2, "timeout": 4,
                       "trial_timeout": 300}}
    job = cli_ws.jobs.wait(cli_ws.jobs.submit_sweep(spec).id, timeout=120)
    assert job.status == "Canceled" and "timeout (4" in (job.error or "")
    children = cli_ws.jobs.children(job.id)
    assert 1 <= len(children) <= 2 and all(c.status == "Canceled" for c in children)
    assert all(c.spec["timeout"] == 300 for c in children)


def test_a_sweep_step_in_a_pipeline_hands_its_best_trial_to_the_next_step(
        mlws: Callable[..., Result], cli_ws: Workspace) -> None:
    created = json.loads(mlws("job", "create", "-f", str(SPECS / "pipeline-sweep.yml"),
                              "--wait", "-o", "json").stdout)
    assert created["status"] == "Completed", created.get("error")
    steps = {c.step_name: c for c in cli_ws.jobs.children(created["id"])}
    sweep = steps["sweep_step"]
    assert sweep.type == "sweep" and sweep.status == "Completed"
    view = cli_ws.jobs.sweep_view(sweep.id)
    assert sorted(t.params["x"] for t in view.trials) == [1, 2.5, 6]
    assert view.best is not None and view.best.params == {"x": 2.5}  # target 3
    assert {c.parent_id for c in cli_ws.jobs.children(sweep.id)} == {sweep.id}
    picked = cli_ws.jobs.paths(steps["use"].id).outputs / "picked" / "x.txt"
    assert picked.read_text() == "2.5"
