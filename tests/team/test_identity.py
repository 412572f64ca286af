"""Who submitted a job and which machine runs it: recorded, listed and filtered, on the embedded
SQLite store and on a team workspace (PostgreSQL + SeaweedFS, two workspace folders)."""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from tests.helpers import stop_jobs
from tests.team.conftest import Team


def _submit_as(ws: Workspace, user: str | None, monkeypatch: pytest.MonkeyPatch) -> str:
    if user is None:
        monkeypatch.delenv("MLWS_USER", raising=False)
    else:
        monkeypatch.setenv("MLWS_USER", user)
    job = ws.jobs.submit_command("python -c pass")
    assert ws.jobs.wait(job.id, timeout=120).status == "Completed"
    return job.id


def _cli(ws: Workspace, *args: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _ids(ws: Workspace, created_by: str) -> set[str]:
    return {j.id for j in ws.jobs.list(created_by=created_by)}


def _check_identity(ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    os_user = f"{getpass.getuser()}@{socket.gethostname()}"
    mine = _submit_as(ws, None, monkeypatch)
    alice = _submit_as(ws, "alice", monkeypatch)
    bob = _submit_as(ws, "bob@lab-7", monkeypatch)
    (tmp_path / "m.txt").write_text("w")
    model = ws.models.create("m", tmp_path / "m.txt")  # as bob@lab-7 (still set)

    assert ws.jobs.get(mine).created_by == os_user
    assert ws.jobs.get(alice).created_by == "alice"
    assert model.created_by == "bob@lab-7"
    assert ws.jobs.get(mine).public_dict()["host"] == socket.gethostname()

    assert _ids(ws, "alice") == {alice}
    assert _ids(ws, "bob") == {bob}  # a user matches USER@any host
    assert _ids(ws, "bob@lab-7") == {bob}
    assert _ids(ws, getpass.getuser()) == {mine}
    assert _ids(ws, "bo") == set() and _ids(ws, "a_ice") == set() and _ids(ws, "%") == set()
    assert ws.jobs.count(created_by="bob") == 1
    monkeypatch.setenv("MLWS_USER", "alice")
    assert _ids(ws, "ME") == {alice}

    assert [m.version for m in ws.models.list(created_by="bob")] == ["1"]
    ws.models.create("m", tmp_path / "m.txt", version="2")  # as alice
    assert [m.version for m in ws.models.list("m", created_by="ME")] == ["2"]
    assert [m.version for m in ws.models.list("m", created_by="bob")] == ["1"]
    assert ws.models.list(created_by="bob") == []  # m's latest version is alice's now
    assert ws.models.count("m", created_by="b_b") == 0
    models = json.loads(_cli(ws, "model", "list", "-n", "m", "--created-by", "me", "-o", "json",
                             monkeypatch=monkeypatch))
    assert [(m["version"], m["created_by"]) for m in models] == [("2", "alice")]

    listed = json.loads(_cli(ws, "job", "list", "--created-by", "me", "-o", "json",
                             monkeypatch=monkeypatch))
    assert [(j["id"], j["created_by"], j["host"]) for j in listed] == [
        (alice, "alice", socket.gethostname())]
    assert {j["id"] for j in json.loads(_cli(ws, "job", "list", "-o", "json",
                                             monkeypatch=monkeypatch))} == {mine, alice, bob}


def test_created_by_and_host_on_the_embedded_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLWS_STORE_URI", raising=False)
    monkeypatch.delenv("MLWS_ARTIFACT_URI", raising=False)
    ws = Workspace.init(tmp_path / "ws")
    try:
        _check_identity(ws, monkeypatch, tmp_path)
        table = _cli(ws, "job", "list", monkeypatch=monkeypatch)
        assert table.splitlines()[0].split()[-1] == "DURATION"  # one machine: no host column
    finally:
        stop_jobs(ws)
        ws.close()


def test_created_by_and_host_on_a_team_workspace(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = Workspace.init(tmp_path / "A", store_uri=team.store_uri, artifact_uri=team.artifact_uri)
    b = Workspace.init(tmp_path / "B", store_uri=team.store_uri, join=True)
    try:
        _check_identity(a, monkeypatch, tmp_path)
        carol = _submit_as(b, "carol", monkeypatch)
        assert _ids(a, "carol") == {carol} and _ids(b, "alice") == _ids(a, "alice")
        monkeypatch.delenv("MLWS_USER")
        table = _cli(b, "job", "list", "--created-by", "carol", monkeypatch=monkeypatch)
        header, *rows = table.strip().splitlines()
        assert header.split()[-2:] == ["HOST", "CREATED_BY"]
        assert len(rows) == 1 and carol in rows[0]  # carol's job alone
        assert rows[0].split()[-2:] == [socket.gethostname(), "carol"]
    finally:
        stop_jobs(a)
        stop_jobs(b)
        a.close()
        b.close()


def test_steps_and_trials_are_recorded_as_created_by_their_submitter(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The pipeline driver submits the steps in its own process (another OS identity, and no
    Jupyter user): they are still the submitter's."""
    from jupyter_mlws.team.identity import acting_as

    monkeypatch.delenv("MLWS_USER", raising=False)
    spec = tmp_path / "pipe.yml"
    spec.write_text("type: pipeline\njobs:\n  one:\n    type: command\n"
                    "    command: python -c pass\n  two:\n    type: command\n"
                    "    command: python -c pass\n")
    with acting_as("ada"):  # as the REST server does for its Jupyter user
        pipe = ws.jobs.create_from_file(spec)
    try:
        assert ws.jobs.wait(pipe.id, timeout=240).status == "Completed"
        steps = [j for j in ws.jobs.list(include_children=True) if j.parent_id == pipe.id]
        assert len(steps) == 2
        assert {s.created_by for s in steps} == {"ada"} == {ws.jobs.get(pipe.id).created_by}
        assert {j.id for j in ws.jobs.list(created_by="ada", include_children=True)} == \
            {pipe.id} | {s.id for s in steps}
    finally:
        stop_jobs(ws)
