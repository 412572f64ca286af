"""The example notebooks run with papermill, as a user would run them, in a temporary workspace."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import papermill
import pytest

from jupyter_mlws import Workspace
from tests.helpers import stop_jobs

from .conftest import NOTEBOOKS

EXAMPLES = ("quickstart.ipynb", "submit-runs.ipynb", "compare-runs.ipynb")


def _outputs(nb_path: Path) -> list[dict[str, Any]]:
    nb = json.loads(nb_path.read_text())
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def _text(outputs: list[dict[str, Any]], mime: str = "text/plain") -> str:
    parts = []
    for o in outputs:
        if o["output_type"] == "stream":
            parts.append(o["text"] if isinstance(o["text"], str) else "".join(o["text"]))
        elif "data" in o and mime in o["data"]:
            value = o["data"][mime]
            parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def test_example_notebooks_are_saved_without_outputs() -> None:
    for name in (*EXAMPLES, "train.ipynb"):
        nb = json.loads((NOTEBOOKS / name).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, name


def test_quickstart_then_submit_runs_then_compare_runs(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, folder)
    ws = Workspace.init(tmp_path / "ws" / ".mlws")
    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    out = tmp_path / "out"
    out.mkdir()

    def execute(name: str) -> list[dict[str, Any]]:
        papermill.execute_notebook(str(folder / name), str(out / name), cwd=str(folder),
                                   kernel_name="python3", progress_bar=False)
        outputs = _outputs(out / name)
        assert not [o for o in outputs if o["output_type"] == "error"], name
        return outputs

    try:
        # quickstart: an environment, a model trained in the notebook and registered
        quick = execute("quickstart.ipynb")
        env = ws.environments.get("iris-quickstart")
        assert env.definition().pip_packages() == [
            "scikit-learn==1.9.1", "ipykernel==7.4.0", "papermill==2.7.0"]
        model = ws.models.get("iris-quickstart")
        assert 0.8 < float(model.tags["accuracy"]) <= 1.0
        assert "Registered model iris-quickstart:1" in _text(quick)
        assert "iris-quickstart" in _text(quick, "text/html")
        saved = ws.models.download("iris-quickstart", dest=tmp_path / "dl")
        with open(saved, "rb") as f:
            clf = pickle.load(f)
        assert clf.predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0

        # submit-runs: two jobs of train.ipynb with different C, both completed
        runs = execute("submit-runs.ipynb")
        jobs = [j for j in ws.jobs.list() if j.display_name == "train"]
        assert len(jobs) == 2 and all(j.status == "Completed" for j in jobs)
        assert sorted(ws.jobs.params(j.id)["C"] for j in jobs) == [0.1, 10]
        for j in jobs:
            assert (ws.jobs.paths(j.id).outputs / "model" / "model.pkl").is_file()
            assert f"Job {j.id} Completed" in _text(runs)
            assert [m.key for m in ws.jobs.metrics(j.id)] == ["accuracy"]

        # compare-runs: a table of both runs, best first
        compare = execute("compare-runs.ipynb")
        table = _text(compare, "text/html")
        assert "<table" in table and all(j.id in table for j in jobs)
        best = min(jobs, key=lambda j: (-ws.jobs.metrics(j.id)[0].value,
                                        ws.jobs.params(j.id)["C"]))
        assert f"(job {best.id})" in _text(compare)
    finally:
        stop_jobs(ws)
        ws.close()
