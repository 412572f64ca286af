"""``mlws``'s entry (:mod:`jupyter_mlws.cli.entry`): ``mlws job notebook`` read with the standard
library must mean what click reads, and everything else must be click's own answer.

Real click, real CLI processes; the agent-backed submissions themselves are compared with the
normal path in tests/jobs/test_fast_submit.py.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from jupyter_mlws.cli.entry import parse_job_notebook

ROOT = Path(__file__).resolve().parents[2]
PROG = "python -m jupyter_mlws.cli"


def click_reads(args: list[str]) -> dict[str, Any] | None:
    """What click passes to ``mlws job notebook`` for ``args``; ``None`` when it refuses them."""
    from jupyter_mlws.cli.job import job_notebook

    try:
        ctx = job_notebook.make_context("notebook", list(args))
    except (click.exceptions.Exit, click.ClickException):
        return None
    return dict(ctx.params)


@pytest.fixture
def nb(tmp_path: Path) -> Path:
    path = tmp_path / "nb.ipynb"
    path.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    return path


def cases(nb: Path, tmp_path: Path) -> list[list[str]]:
    folder = tmp_path / "code"
    folder.mkdir(exist_ok=True)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    n = str(nb)
    return [
        [n], [n, "-p", "msg", "hi"], ["-p", "a", "1", n, "-p", "b", "'two words'"],
        [n, "--parameter", "x", "[1, 2]"], [n, "-e", "env:1", "-c", "gpu", "--experiment", "e"],
        [n, "--environment", "e@latest", "--compute", "local"], [n, "--timeout", "2.5"],
        [n, "--timeout", "nan"], [n, "--timeout", "soon"], [n, "-o", "json", "--wait"],
        [n, "--output", "yaml"], [n, "-o", "JSON"], [n, "-o", "xml"], [n, "--code", str(folder)],
        [n, "--code", str(a_file)], [n, "--code", str(tmp_path / "missing")],
        [n, "-w", str(tmp_path / "ws")], [n, "-w", str(a_file)], [n, "--workspace", str(folder)],
        [str(folder)], [str(tmp_path / "missing.ipynb")], [], [n, n], [n, "-p", "msg"],
        [n, "-p", "msg", "-1"], [n, "-c", "-x"], [n, "-c", "a", "-c", "b"], [n, "--wait", "--wait"],
        [n, "--stream"], [n, "-i", "x=1"], [n, "--out", "o"], [n, "--compute=local"],
        [n, "-olocal"], [n, "--"], ["--", n], [n, "-h"], [n, "--help"], [n, "--bogus"],
        [n, "-p", "", ""], [n, "-e", ""], [n, "--experiment", "ünïcode"],
    ]


def test_the_entry_reads_job_notebook_as_click_does(nb: Path, tmp_path: Path) -> None:
    """Whatever the entry takes, click takes with the same values; what the entry leaves to
    click is left whole (click may take it or refuse it)."""
    taken = 0
    for args in cases(nb, tmp_path):
        mine = parse_job_notebook(args)
        if mine is None:
            continue
        theirs = click_reads(args)
        assert theirs is not None, args  # never a command line click would refuse
        taken += 1
        assert mine["notebook"] == theirs["notebook"], args
        assert [tuple(p) for p in mine["parameters"]] == list(theirs["parameters"]), args
        for key in ("code", "environment", "compute", "experiment", "workspace_path"):
            assert mine.get(key) == theirs[key], (args, key)
        timeout = mine.get("timeout")
        assert (timeout == theirs["timeout"] or math.isnan(timeout) and math.isnan(
            theirs["timeout"])), args
        assert mine.get("output", "table") == theirs["output"], args
        assert bool(mine.get("wait")) == theirs["wait"], args
        assert not (theirs["inputs"] or theirs["outputs"] or theirs["stream"]), args
    assert taken >= 12  # (the common spellings are read here, not handed to click)


def run(args: list[str], env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd)


def through_click(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """The same command line given straight to click's command tree (no entry)."""
    code = ("import sys\nfrom jupyter_mlws.cli._app import main\n"
            f"main(args=sys.argv[1:], prog_name={PROG!r})\n")
    return run(["-c", code, *args], **kw)


@pytest.mark.parametrize("args", [
    ["--help"], ["job", "--help"], ["job", "notebook", "--help"], ["job", "notebook", "-h"],
    ["job", "notebook"], ["job", "notebook", "missing.ipynb"], ["job", "notebook", "{nb}", "-p"],
    ["job", "notebook", "{nb}", "-p", "msg"], ["job", "notebook", "{nb}", "-o", "xml"],
    ["job", "notebook", "{nb}", "--timeout", "soon"], ["job", "notebook", "{dir}"],
    ["job", "notebook", "{nb}", "--bogus"], ["job", "noteboo", "{nb}"], ["jobs"],
    ["job", "notebook", "{nb}", "-w", "{nb}"],
])
def test_help_and_errors_are_clicks_own(args: list[str], nb: Path, tmp_path: Path) -> None:
    """Help, usage errors and their exit codes are click's, word for word."""
    args = [a.format(nb=nb, dir=tmp_path) for a in args]
    env = {"MLWS_WORKSPACE": str(tmp_path / "no-workspace-here")}
    mine = run(["-m", "jupyter_mlws.cli", *args], env=env, cwd=tmp_path)
    theirs = through_click(args, env=env, cwd=tmp_path)
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (theirs.returncode, theirs.stdout, theirs.stderr)
    assert mine.returncode in (0, 2) and (mine.stdout or mine.stderr)
    assert "Traceback" not in mine.stderr


def test_version_and_other_commands_go_to_click(tmp_path: Path) -> None:
    env = {"MLWS_WORKSPACE": str(tmp_path / "ws")}
    for args in (["--version"], ["workspace", "--help"], ["model", "list", "-o", "json"]):
        mine = run(["-m", "jupyter_mlws.cli", *args], env=env, cwd=tmp_path)
        theirs = through_click(args, env=env, cwd=tmp_path)
        assert (mine.returncode, mine.stdout, mine.stderr) == \
            (theirs.returncode, theirs.stdout, theirs.stderr), args
        assert mine.returncode == 0, mine.stderr


def test_a_typed_error_without_the_agent_is_said_once(nb: Path, tmp_path: Path) -> None:
    """No agent: the entry hands over to click, which submits (and says what is wrong) once."""
    from jupyter_mlws import Workspace

    ws = Workspace.init(tmp_path / "p")
    ws.close()
    args = ["-m", "jupyter_mlws.cli", "job", "notebook", str(nb), "-c", "no-such-compute",
            "-w", str(tmp_path / "p")]
    done = run(args, env={"MLWS_JOB_AGENT": "0"})
    assert done.returncode == 1
    assert done.stderr.startswith("error: No compute named 'no-such-compute'.")
    assert done.stderr.count("error:") == 1 and done.stdout == ""
