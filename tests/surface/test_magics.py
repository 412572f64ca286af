"""The magics in a real IPython kernel, as JupyterLab runs them.

One kernel serves the module. It is started as Jupyter Server starts a notebook's kernel: with
``JPY_SESSION_NAME`` naming the notebook (relative to the server's root, the kernel's folder's
parent here), so ``__session__`` is set too.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import papermill
import pytest
from jupyter_client.manager import start_new_kernel
from papermill.exceptions import PapermillExecutionError

from jupyter_mlws import Workspace
from jupyter_mlws.cli._format import detail_lines
from jupyter_mlws.magics import MlwsMagics, literal, resolve_session_path, saved_notebook_has_cell
from tests.helpers import make_notebook, stop_jobs

from .conftest import NOTEBOOKS
from .literal_cases import (
    CASES,
    INPUT_CASES,
    NOTEBOOK_PARAMETERS,
    REFUSED,
    as_json,
    expected,
)

SESSION = "nb/self.ipynb"
SELF_CELL = "%submit -p x 2"


@dataclass
class Result:
    status: str
    msgs: list[dict[str, Any]] = field(default_factory=list)

    def of(self, msg_type: str) -> list[dict[str, Any]]:
        return [m["content"] for m in self.msgs if m["msg_type"] == msg_type]

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for c in self.of("stream") if c["name"] == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(c["text"] for c in self.of("stream") if c["name"] == "stderr")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.of("error")

    def texts(self, *types: str) -> list[str]:
        """text/plain of display_data, update_display_data and execute_result messages."""
        wanted = types or ("display_data", "update_display_data", "execute_result")
        return [m["content"]["data"].get("text/plain", "") for m in self.msgs
                if m["msg_type"] in wanted]

    @property
    def job_id(self) -> str:
        for text in self.texts("display_data"):
            found = re.search(r"JobMonitor\(job=(\w+)", text)
            if found:
                return found.group(1)
        raise AssertionError(f"no job monitor shown: {self.msgs}")


class Kernel:
    def __init__(self, km: Any, kc: Any) -> None:
        self.km = km
        self.kc = kc
        self.stray: list[dict[str, Any]] = []  # iopub messages of no request (widget threads)

    def run(self, code: str, timeout: float = 90) -> Result:
        msg_id = self.kc.execute(code)
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        result = Result(status=reply["content"]["status"])
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                self.stray.append(msg)
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return result
            result.msgs.append(msg)

    def ok(self, code: str, timeout: float = 90) -> Result:
        result = self.run(code, timeout)
        assert result.status == "ok", (code, result.errors, result.stderr)
        assert not result.errors
        return result

    def fails(self, code: str, *needles: str) -> str:
        """Run ``code``, expect the cell to fail with a one-line error; return that line."""
        result = self.run(code)
        assert result.status == "error", (code, result.msgs)
        assert len(result.errors) == 1, result.errors
        err = result.errors[0]
        assert len(err["traceback"]) == 1, err["traceback"]
        line = err["traceback"][0]
        assert "\n" not in line and "Traceback" not in line and 'File "' not in line, line
        assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
        assert err["evalue"] == line
        for needle in needles:
            assert needle in line, (needle, line)
        return line


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, shared_envs_dir: Path
          ) -> Iterator[tuple[Kernel, Workspace, Path]]:
    root = tmp_path_factory.mktemp("magics")
    (root / "home").mkdir()
    code = root / "proj" / "nb"
    code.mkdir(parents=True)
    shutil.copy(NOTEBOOKS / "train.ipynb", code / "train.ipynb")
    make_notebook(code / "params.ipynb",
                  "print(type(lr).__name__, layers, opt, flag, n)",
                  parameters="lr = 0.01\nlayers = [1]\nopt = 'sgd'\nflag = False\nn = 1")
    make_notebook(code / "failing.ipynb", "raise ValueError('boom')")
    make_notebook(code / "slow.ipynb", "import time\ntime.sleep(2)")
    make_notebook(code / "self.ipynb", "%load_ext jupyter_mlws", SELF_CELL, "print('x is', x)",
                  parameters="x = 1")
    ws = Workspace.init(root / ".mlws")
    env = {**os.environ, "HOME": str(root / "home"), "MLWS_WORKSPACE": str(ws.path),
           "MLWS_ENVS_DIR": str(shared_envs_dir), "JPY_SESSION_NAME": SESSION}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(code))
    kernel = Kernel(km, kc)
    try:
        kernel.ok("%load_ext jupyter_mlws")
        yield kernel, ws, code
    finally:
        stop_jobs(ws)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        ws.close()


@pytest.fixture
def kernel(setup: tuple[Kernel, Workspace, Path]) -> Kernel:
    return setup[0]


@pytest.fixture
def kws(setup: tuple[Kernel, Workspace, Path]) -> Workspace:
    return setup[1]


# --- parsing (in this process) ----------------------------------------------------------------

def test_parameter_values_are_python_literals_or_strings() -> None:
    assert literal("0.1") == 0.1 and isinstance(literal("0.1"), float)
    assert literal("10") == 10 and isinstance(literal("10"), int)
    assert literal("[64, 32]") == [64, 32]
    assert literal("{'a': 1}") == {"a": 1}
    assert literal("True") is True and literal("None") is None
    assert literal("'7'") == "7"
    assert literal("adam") == "adam"
    assert literal("relu(x)") == "relu(x)"
    assert literal("data/train.csv") == "data/train.csv"


def test_submit_line_parsing() -> None:
    from jupyter_mlws.magics import _parse

    parser = MlwsMagics._make_submit_parser()
    args = _parse(parser, 'train.ipynb -p layers "[64, 32]" -p lr -0.5 --input d=azureml:iris:1 '
                          "--out model --out report -e iris-train --wait")
    assert args.notebook == "train.ipynb"
    assert args.param == [["layers", "[64, 32]"], ["lr", "-0.5"]]
    assert args.input == ["d=azureml:iris:1"] and args.out == ["model", "report"]
    assert args.environment == "iris-train" and args.wait


def test_session_path_resolution(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "root" / "sub" / "a.ipynb", "print(1)")
    cwd = nb.parent
    assert resolve_session_path(str(nb), cwd) == nb  # absolute (Jupyter Server knows the name)
    assert resolve_session_path("sub/a.ipynb", cwd) == nb.resolve()  # relative to the root
    assert resolve_session_path("a.ipynb", cwd) == nb.resolve()
    assert resolve_session_path("sub/missing.ipynb", cwd) is None
    assert resolve_session_path(str(tmp_path / "nope.ipynb"), cwd) is None
    assert saved_notebook_has_cell(nb, "print(1)\n")
    assert not saved_notebook_has_cell(nb, "print(2)")


# --- errors: one line, cell in error ------------------------------------------------------------

@pytest.mark.parametrize("code, needle", [
    ("%submit --bogus", "unrecognized arguments: --bogus"),
    ("%submit train.ipynb -p C", "expected 2 arguments"),
    ("%submit train.ipynb --input nodata", "must look like NAME=VALUE"),
    ("%submit train.ipynb -p 'C 1", "No closing quotation"),
    ("%register model", "the following arguments are required"),
    ("%register thing a b", "invalid choice: 'thing'"),
    ("%mlws list nothings", "unknown kind 'nothings'"),
    ("%mlws frobnicate", "invalid choice"),
    ("%mlws browse computes", "cannot be browsed"),
    ("%%environment\nnumpy", "the following arguments are required: name"),
    ("%%environment e --format yaml\nnumpy", "invalid choice: 'yaml'"),
    ("%%environment e\n   \n", "the cell has no body"),
])
def test_usage_errors_are_one_line(kernel: Kernel, code: str, needle: str) -> None:
    line = kernel.fails(code, needle)
    assert "usage:" in line or "%" in line


def test_workspace_errors_are_one_line_with_the_fix(kernel: Kernel) -> None:
    kernel.fails("%register model m /does/not/exist", "does not exist", "Check the path")
    kernel.fails("%mlws show model nosuch", "nosuch")
    kernel.fails("%submit missing.ipynb", "does not exist")
    kernel.fails("%submit train.ipynb -p nosuch 1", "Unknown parameter nosuch",
                 "Its parameters cell defines: C, max_iter, test_size, seed")
    kernel.fails("%submit train.ipynb -e no-such-env", "No environment 'no-such-env'")
    kernel.fails("%%environment MLWS-mine\nnumpy", "reserved")
    # the kernel is fine afterwards
    assert "%submit" in kernel.ok("%mlws help").stdout


# --- %%environment ------------------------------------------------------------------------------

def test_environment_registers_then_reuses_identical_body(kernel: Kernel, kws: Workspace) -> None:
    body = "scikit-learn==1.9.1\nipykernel==7.4.0\n"
    first = "\n".join(kernel.ok(f"%%environment iris-x\n{body}").texts())
    env = kws.environments.get("iris-x")
    assert "iris-x:1 (registered)" in first
    assert env.env_hash[:12] in first and env.image in first
    assert "venv: not built yet" in first
    again = "\n".join(kernel.ok(f"%%environment iris-x\n{body}").texts())
    assert "iris-x:1 (identical to the latest: reused)" in again
    changed = "\n".join(kernel.ok(f"%%environment iris-x\n{body}papermill==2.7.0\n").texts())
    assert "iris-x:2 (registered)" in changed
    docker = "\n".join(kernel.ok("%%environment iris-d\nFROM python:3.11-slim\n"
                                 "RUN pip install numpy\n").texts())
    assert "iris-d:1" in docker
    assert kws.environments.get("iris-d").definition().docker_steps == ["RUN pip install numpy"]
    conda = kernel.ok("%%environment iris-c --format conda\nchannels: [conda-forge]\n"
                      "dependencies:\n  - python=3.11\n  - pip:\n    - numpy\n")
    assert "iris-c:1" in "\n".join(conda.texts())


def test_environment_build_streams_the_log_into_the_cell(kernel: Kernel) -> None:
    res = kernel.ok("%%environment tiny-venv --build --builder venv\n# nothing to install\n",
                    timeout=300)
    shown = res.of("display_data")
    updates = res.of("update_display_data")
    assert len(shown) == 2  # the summary, then the live build log
    build_id = shown[1]["transient"]["display_id"]
    assert updates and all(u["transient"]["display_id"] == build_id for u in updates)
    final = updates[-1]["data"]["text/plain"]
    assert "create the venv" in final
    assert re.search(r"tiny-venv:1: (built in [\d.]+ s:|reused the cached) venv ", final)
    # built: the next run says it is cached
    again = "\n".join(kernel.ok("%%environment tiny-venv\n# nothing to install\n").texts())
    assert "venv: cached" in again


def test_live_log_shows_a_throttled_line_without_waiting_for_the_next(kernel: Kernel) -> None:
    res = kernel.ok("from jupyter_mlws.magics import LiveLog\nimport time\n"
                    "live = LiveLog('build', interval=0.3)\n"
                    "live.add('first'); live.add('second')\n"  # the second comes too soon
                    "time.sleep(0.8)\nprint(live.updates)\nlive.finish('done')")
    updates = [u["data"]["text/plain"] for u in res.of("update_display_data")]
    assert res.stdout.strip() == "2"  # the timer showed 'second' on its own
    assert "second" in updates[1] and "done" not in updates[1]
    assert updates[-1].endswith("done") and len(updates) == 3


# --- %register ----------------------------------------------------------------------------------

def test_register_from_a_local_file(kernel: Kernel, kws: Workspace) -> None:
    kernel.ok("open('weights.bin', 'wb').write(b'w1')")
    out = kernel.ok("%register model local-m weights.bin --version 7 --tag stage=dev "
                    "--description 'first try'").stdout
    assert "Registered model local-m:7 (type custom_model)" in out
    model = kws.models.get("local-m", "7")
    assert model.tags == {"stage": "dev"} and model.description == "first try"
    out = kernel.ok("%register data local-d weights.bin --type uri_file").stdout
    assert "Registered data local-d:1 (type uri_file)" in out
    kernel.fails("%register model local-m weights.bin --tag novalue", "--tag 'novalue'")


def test_submit_wait_then_register_its_output(kernel: Kernel, kws: Workspace) -> None:
    res = kernel.ok("%submit train.ipynb -p C 0.5 --out model --wait", timeout=180)
    job_id = res.job_id
    assert re.search(rf"Job {job_id} Completed in [\d.]+ s: accuracy=0\.\d+", res.stdout)
    assert f"JobMonitor(job={job_id}, status=Completed)" in res.texts("update_display_data")
    assert kws.jobs.get(job_id).status == "Completed"
    assert kws.jobs.params(job_id)["C"] == 0.5
    out = kernel.ok(f"%register model iris mlws://jobs/{job_id}/outputs/model").stdout
    assert f"Registered model iris:1 from job {job_id}" in out
    assert kws.models.get("iris").job_id == job_id
    out = kernel.ok(f"%register data iris-out mlws://jobs/{job_id}/outputs/model").stdout
    assert f"from job {job_id}" in out
    kernel.fails(f"%register model iris mlws://jobs/{job_id}/outputs/nothing", "no output")

    # %mlws list / show see it
    models = "\n".join(kernel.ok("%mlws list models").texts())
    assert "iris" in models and job_id in models
    assert "iris-out" in "\n".join(kernel.ok("%mlws list data").texts())
    envs = "\n".join(kernel.ok("%mlws list environments").texts())
    assert "MLWS-python-3.11-minimal" in envs and "curated" in envs
    jobs = "\n".join(kernel.ok("%mlws list jobs").texts())
    assert job_id in jobs and "Completed" in jobs
    shown = "\n".join(kernel.ok("%mlws show model iris:1").texts())
    assert f"job_id: {job_id}" in shown and "custom_model" in shown
    shown = "\n".join(kernel.ok(f"%mlws show job {job_id}").texts())
    assert "accuracy=" in shown and re.search(r"status:\s+Completed", shown)
    assert "produced:     model:iris:1" in shown
    cli_lines = detail_lines(kws.jobs.detail(job_id).public_dict())
    assert "\n".join(cli_lines) in shown  # what `mlws job show` prints
    html = [m["content"]["data"]["text/html"] for m in kernel.ok("%mlws list jobs").msgs
            if m["msg_type"] == "display_data"]
    assert html and "<table" in html[0]


def test_submit_parameters_keep_their_types(kernel: Kernel, kws: Workspace) -> None:
    res = kernel.ok('%submit params.ipynb -p lr 0.1 -p layers "[64, 32]" -p opt adam '
                    "-p flag True -p n -3 --wait", timeout=180)
    job = kws.jobs.get(res.job_id)
    assert job.spec["parameters"] == {"lr": 0.1, "layers": [64, 32], "opt": "adam",
                                      "flag": True, "n": -3}
    assert "float [64, 32] adam True -3" in kws.jobs.logs(job.id)


def test_submit_literals_have_the_types_every_surface_gives(
        setup: tuple[Kernel, Workspace, Path]) -> None:
    kernel, kws, code = setup
    make_notebook(code / "types.ipynb", "pass", parameters=NOTEBOOK_PARAMETERS)
    def word(text: str) -> str:  # IPython expands {expr} in a magic's line: {{ is a brace
        return shlex.quote(text.replace("{", "{{").replace("}", "}}"))

    args = " ".join(f"-p {name} {word(text)}" for name, (text, _v) in CASES.items())
    inputs = " ".join(f"--input {name}={text}" for name, (text, _v) in INPUT_CASES.items())
    res = kernel.ok(f"%submit types.ipynb {args} {inputs}")
    assert as_json(kws.jobs.get(res.job_id).spec["parameters"]) == expected(inputs=True)
    for text, words in REFUSED.items():
        kernel.fails(f"%submit types.ipynb -p p_int {word(text)}", *words)
    kernel.fails("%submit types.ipynb --input x={{1,2}}", "a set", "list")


def test_submit_wait_on_a_failing_job_fails_the_cell(kernel: Kernel) -> None:
    line = kernel.fails("%submit failing.ipynb --wait", "Failed", "%mlws show job")
    assert "boom" in line or "ValueError" in line


def test_monitor_keeps_updating_after_the_cell_returned(kernel: Kernel, kws: Workspace) -> None:
    """Widget updates from the monitor's thread reach the frontend while the kernel is idle."""
    t0 = time.monotonic()
    res = kernel.ok("%submit slow.ipynb")
    returned_in = time.monotonic() - t0
    job_id = res.job_id
    assert returned_in < 10 and not kws.jobs.get(job_id).done
    opened = [m for m in res.msgs if m["msg_type"] == "comm_open"]
    assert opened  # the widget models
    ids = {m["content"]["comm_id"] for m in opened}
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] in ids:
            seen.append(msg["content"]["data"])
            state = msg["content"]["data"].get("state", {})
            if any("Completed" in str(v) for v in state.values()):
                break
    assert any("Running" in str(d) or "cells" in str(d) for d in seen), seen
    assert any("Completed" in str(d.get("state", {})) for d in seen), seen


# --- %submit without a notebook -----------------------------------------------------------------

def test_submit_this_notebook_and_no_recursion_inside_the_job(kernel: Kernel, kws: Workspace
                                                              ) -> None:
    assert kernel.ok("print(__session__)").stdout.strip() == SESSION
    res = kernel.ok(SELF_CELL)
    job = kws.jobs.wait(res.job_id, timeout=120)
    log = kws.jobs.logs(job.id)
    assert job.status == "Completed", log
    assert Path(job.spec["notebook"]).name == "self.ipynb"
    assert job.spec["parameters"] == {"x": 2}
    assert f"%submit: skipped inside job {job.id}" in log
    assert "x is 2" in log
    assert len([j for j in kws.jobs.list() if j.display_name == "self"]) == 1


def test_submit_refuses_unsaved_changes(kernel: Kernel, kws: Workspace) -> None:
    before = len(kws.jobs.list())
    kernel.fails("%submit -p x 3", "unsaved changes",
                 "save the notebook (Ctrl+S) and run the cell again")
    kernel.fails(SELF_CELL + "\n# an edit not saved yet", "unsaved changes")
    assert len(kws.jobs.list()) == before


def test_submit_without_a_known_notebook_says_to_pass_it(kernel: Kernel) -> None:
    kernel.ok("import os\n_saved = __session__\ndel __session__\n"
              "os.environ.pop('JPY_SESSION_NAME')")
    try:
        kernel.fails("%submit", "cannot tell which notebook", "Pass it: %submit NOTEBOOK")
        kernel.ok("__session__ = 'nb/renamed.ipynb'")
        kernel.fails("%submit", "'nb/renamed.ipynb' is not a file here", "%submit NOTEBOOK")
    finally:
        kernel.ok("__session__ = _saved\nos.environ['JPY_SESSION_NAME'] = _saved")


# --- %mlws --------------------------------------------------------------------------------------

def test_mlws_workspace_switches(kernel: Kernel, kws: Workspace, tmp_path: Path) -> None:
    other = Workspace.init(tmp_path / "other")
    other.close()
    try:
        out = kernel.ok(f"%mlws workspace {tmp_path / 'other'}").stdout
        assert str(other.path) in out
        assert "No models yet." in kernel.ok("%mlws list models").stdout
    finally:
        kernel.ok(f"%mlws workspace {kws.path}")
    kernel.fails(f"%mlws workspace {tmp_path / 'none'}", "No workspace at")
    assert str(kws.path) in kernel.ok("%mlws workspace").stdout


def test_mlws_help_and_widgets(kernel: Kernel) -> None:
    assert "%%environment NAME" in kernel.ok("%mlws help").stdout
    assert "%mlws list" in kernel.ok("%mlws").stdout
    browse = kernel.ok("%mlws browse environments")
    assert any("AssetBrowser" in t for t in browse.texts())
    assert browse.of("comm_open")
    assert kernel.run("%submit -h").status == "ok"


def test_papermill_sees_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What nbclient/papermill record for a failing magic: an error output of one line."""
    ws = Workspace.init(tmp_path / "ws")
    ws.close()
    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    nb = make_notebook(tmp_path / "code" / "bad.ipynb", "%load_ext jupyter_mlws",
                       "%register model m /does/not/exist", "print('not reached')")
    out = tmp_path / "out.ipynb"
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(nb), str(out), kernel_name="python3", progress_bar=False)
    assert info.value.ename == "MagicError"
    assert info.value.evalue.startswith("The model path '/does/not/exist' does not exist.")
    cells = json.loads(out.read_text())["cells"]
    errors = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]
              if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["traceback"] == [info.value.evalue]
    assert all(o.get("text") != "not reached" for c in cells for o in c.get("outputs", []))
