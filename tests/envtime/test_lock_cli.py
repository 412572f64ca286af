"""`mlws env lock` prints the lock; `--update` re-resolves into a new version, never silently."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from jupyter_mlws import Workspace
from jupyter_mlws.cli import main
from jupyter_mlws.environments.lock_update import TAG_FROM, TAG_REQUIREMENTS

SERIES = f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_lock_prints_and_update_makes_a_new_version(ws: Workspace,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWS_WORKSPACE", str(ws.path))
    env = ws.environments.create("moving", pip_requirements=["six", "idna"])
    old_lock = "# an older resolution\nidna==3.6\nsix==1.16.0\n"
    ws.environments.set_lock(env.env_hash, SERIES, old_lock, builder="venv")
    runner = CliRunner()
    shown = runner.invoke(main, ["env", "lock", "moving:1"])
    assert shown.exit_code == 0, shown.output
    assert shown.output == old_lock
    refused = runner.invoke(main, ["env", "lock", "moving", "six"])
    assert refused.exit_code != 0 and "--update" in refused.output
    unknown = runner.invoke(main, ["env", "lock", "moving", "--update", "numpy"])
    assert unknown.exit_code != 0 and "not in the lock" in unknown.output
    moved = runner.invoke(main, ["env", "lock", "moving", "--update", "six"])
    assert moved.exit_code == 0, moved.output
    assert "Registered moving:2" in moved.output and "six -> six==" in moved.output
    new = ws.environments.get("moving", "2")
    pins = new.definition().pip_requirements or []
    assert "idna==3.6" in pins  # held at its locked version
    assert any(p.startswith("six==") and p != "six==1.16.0" for p in pins)
    assert new.tags[TAG_FROM] == "moving:1" and "six" in new.tags[TAG_REQUIREMENTS]
    assert new.env_hash != env.env_hash
    assert ws.environments.lock("moving", "1") == old_lock  # the old version keeps its lock
    again = runner.invoke(main, ["env", "lock", "moving:2", "--update", "six"])
    assert again.exit_code == 0, again.output
    assert "nothing moved" in again.output or "Registered moving:3" in again.output
