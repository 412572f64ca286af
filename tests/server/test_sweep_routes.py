"""Sweeps through the REST API: ``POST /sweeps`` runs a notebook over a search space (real
papermill trials on local compute) and ``GET /jobs/{id}`` carries its trials table.

Each answer is validated against ``openapi.yaml`` by the ``api`` fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_mlws import Workspace
from tests.helpers import make_notebook
from tests.server.test_rest import error, until

Api = Any

PARAMS = 'C = 1.0\nkernel = "rbf"\nepochs = 2\n'
TRAIN = """
from jupyter_mlws import run
score = {"rbf": 1.0, "linear": 0.5}[kernel] * C
for step in range(epochs):
    run.log_metric("accuracy", score * (step + 1) / epochs, step=step)
"""


async def test_a_notebook_sweep_from_submission_to_its_best_trial(
        api: Api, ws: Workspace, jp_root_dir: Path) -> None:
    make_notebook(jp_root_dir / "work" / "train.ipynb", TRAIN, parameters=PARAMS)
    reply = await api.post("/sweeps", body={
        "notebook": "work/train.ipynb",
        "search": {"C": "choice(0.5, 2.0)", "kernel": 'choice("rbf", "linear")'},
        "literal_parameters": {"epochs": "3"},
        "metric": "accuracy", "goal": "maximize", "sampling": "grid", "max_trials": 4,
        "max_concurrent": 2, "experiment": "rest-sweeps"})
    assert reply.code == 201, reply.body
    sweep = reply.json
    assert sweep["type"] == "sweep" and sweep["experiment"] == "rest-sweeps"
    assert reply.headers["Location"].endswith(f"/mlws/api/jobs/{sweep['id']}")

    async def ended() -> Any:
        detail = (await api.get(f"/jobs/{sweep['id']}")).json
        return detail if detail["status"] in ("Completed", "Failed", "Canceled") else None

    detail = await until(ended, timeout=240, every=0.5)
    assert detail["status"] == "Completed", detail
    view = detail["sweep"]
    assert view["objective"] == {"goal": "maximize", "primary_metric": "accuracy"}
    assert view["problem"] is None and len(view["trials"]) == 4
    assert all(t["status"] == "Completed" and t["job"] for t in view["trials"])
    # sorted by the objective, best first; every combination ran once (grid)
    assert [t["value"] for t in view["trials"]] == [2.0, 1.0, 0.5, 0.25]
    assert sorted((t["params"]["C"], t["params"]["kernel"]) for t in view["trials"]) == [
        (0.5, "linear"), (0.5, "rbf"), (2.0, "linear"), (2.0, "rbf")]
    best = view["best"]
    assert best["params"] == {"C": 2.0, "kernel": "rbf"} and best["value"] == 2.0
    assert best["values"] == {"0": 2.0 / 3, "1": 4.0 / 3, "2": 2.0}  # by step
    assert best["duration_s"] > 0
    # the trials are its children, with the fixed parameter given to each
    trial = (await api.get(f"/jobs/{best['job']}")).json
    assert trial["parent_id"] == sweep["id"] and "sweep" not in trial
    assert trial["params"]["epochs"] == 3 and trial["params"]["C"] == 2.0
    assert sorted(detail["children"]) == sorted(t["job"] for t in view["trials"])


async def test_sweep_submissions_refuse_bad_input(api: Api, ws: Workspace,
                                                  jp_root_dir: Path, tmp_path: Path) -> None:
    make_notebook(jp_root_dir / "nb.ipynb", "print(C)", parameters="C = 1.0\nn: int = 2")
    outside = make_notebook(tmp_path / "outside" / "secret.ipynb", "print('no')",
                            parameters="C = 1.0")
    (jp_root_dir / "link").symlink_to(outside.parent, target_is_directory=True)
    good = {"notebook": "nb.ipynb", "search": {"C": "uniform(0, 1)"}, "metric": "acc"}

    async def submit(**change: Any) -> dict[str, Any]:
        reply = await api.post("/sweeps", body={**good, **change})
        assert reply.code >= 400, reply.body
        body: dict[str, Any] = reply.json
        return body

    # the notebook is confined to the server root
    assert "'..'" in error(await api.post("/sweeps", body={
        **good, "notebook": "../outside/secret.ipynb"}), 400, "unsafe_path")["message"]
    error(await api.post("/sweeps", body={**good, "notebook": "link/secret.ipynb"}), 400,
          "unsafe_path")
    error(await api.post("/sweeps", body={**good, "notebook": "missing.ipynb"}), 404,
          "not_found")
    # a refused expression or value names its field and parameter
    body = await submit(search={"C": "gaussian(0, 1)"})
    assert body["error"] == "invalid_spec" and "gaussian" in body["message"]
    assert (body["details"]["field"], body["details"]["name"]) == ("search", "C")
    body = await submit(search={"C": "uniform(1, 0)"})
    assert "below max_value" in body["message"] and body["details"]["name"] == "C"
    body = await submit(search={"C": "  "})
    assert "empty" in body["message"] and body["details"]["name"] == "C"
    body = await submit(search={"C": "uniform(0, 1)"}, literal_parameters={"C": "0.5"})
    assert "both swept" in body["message"] and body["details"]["field"] == "search"
    body = await submit(literal_parameters={"n": "{1, 2}"})
    assert (body["details"]["field"], body["details"]["name"]) == ("literal_parameters", "n")
    # what the notebook or the sweep refuses
    body = await submit(search={"missing": "uniform(0, 1)"})
    assert body["error"] == "invalid" and "missing" in body["message"]
    body = await submit(search={"n": 'choice("a", "b")'})
    assert body["error"] == "parameter_type" and body["details"]["parameter"] == "n"
    body = await submit(sampling="grid")
    assert body["error"] == "invalid_spec" and "grid" in body["message"]
    body = await submit(max_trials=2, max_concurrent=5)
    assert body["error"] == "invalid_spec" and "max_concurrent_trials" in body["message"]
    error(await api.post("/sweeps", body={**good, "compute": "nope"}), 404, "asset_not_found")
    error(await api.post("/sweeps", body={**good, "environment": "nope"}), 404,
          "asset_not_found")
    for bad in ({"search": {}}, {"metric": ""}, {"goal": "up"}, {"sampling": "sobol"},
                {"max_trials": 0}, {"early_termination": "never"}, {"serach": {}}):
        error(await api.post("/sweeps", body={**good, **bad}), 400, "invalid")
    error(await api.post("/sweeps", raw=b"{not json"), 400, "invalid")
    assert ws.jobs.list(include_children=True) == []  # nothing was started


def test_the_contract_documents_exactly_the_served_routes() -> None:
    """Every route the server serves is in ``openapi.yaml`` and every documented path is
    served (the sweep route among them)."""
    import re

    import yaml

    from jupyter_mlws.server.handlers import routes
    from tests.server.conftest import CONTRACT

    documented = set(yaml.safe_load(CONTRACT.read_text())["paths"])
    served = {re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.removeprefix("/mlws/api"))
              for pattern, _handler in routes("/")}
    served.discard("(/.*)?")  # the JSON 404 of anything else
    action = "/assets/{kind}/{name}/versions/{version}/{action}"  # (?P<action>archive|restore)
    served.discard(action)
    served |= {action.replace("{action}", a) for a in ("archive", "restore")}
    assert "/sweeps" in served
    assert served == documented


def test_the_sweep_view_is_json_safe() -> None:
    """A diverged metric (NaN, infinity) is ``null`` on the wire, never bare ``NaN``."""
    from jupyter_mlws.server.sweep_handlers import finite

    view = {"best": None, "trials": [{"value": float("nan"), "values": {"1": float("inf")}},
                                     {"value": 0.5, "values": {"1": -float("inf"), "2": 0.5}}]}
    assert finite(view) == {"best": None, "trials": [{"value": None, "values": {"1": None}},
                                                     {"value": 0.5,
                                                      "values": {"1": None, "2": 0.5}}]}
