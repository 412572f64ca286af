"""The launch contract (jobs/launch.py): typed, versioned, refused when newer or broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_mlws.errors import LaunchFormatError
from jupyter_mlws.jobs.launch import LAUNCH_VERSION, Launch
from jupyter_mlws.jobs.paths import JobPaths


def sample(tmp_path: Path) -> Launch:
    return Launch(job_id="keen_otter_abc123", workspace=str(tmp_path), kind="command",
                  compute="local", compute_kind="local", slot_dir=str(tmp_path / "slots"),
                  argv=["/bin/sh", "-c", "echo hi"], cwd=str(tmp_path), env={"A": "1"},
                  outputs={"o": "uri_folder"}, timeout=5.0, package_dir=str(tmp_path))


def test_a_launch_round_trips_through_its_file(tmp_path: Path) -> None:
    launch = sample(tmp_path)
    path = tmp_path / "launch.json"
    launch.write(path)
    assert json.loads(path.read_text())["version"] == LAUNCH_VERSION
    assert Launch.read(path) == launch
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_newer_or_broken_launch_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "launch.json"
    data = json.loads(sample(tmp_path).model_dump_json())
    path.write_text(json.dumps({**data, "version": LAUNCH_VERSION + 1}))
    with pytest.raises(LaunchFormatError, match=f"version {LAUNCH_VERSION + 1}.*reads versions"):
        Launch.read(path)
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "argv"} | {"kind": "x"}))
    with pytest.raises(LaunchFormatError, match="not a valid launch file: kind"):
        Launch.read(path)
    path.write_text("{not json")
    with pytest.raises(LaunchFormatError, match="cannot be read"):
        Launch.read(path)


def test_the_runner_refuses_a_newer_launch_and_says_why(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from jupyter_mlws.jobs.runner import main

    paths = JobPaths(tmp_path / "job")
    paths.make()
    data = json.loads(sample(tmp_path).model_dump_json())
    paths.launch.write_text(json.dumps({**data, "version": 99}))
    assert main([str(paths.root)]) == 2
    assert "launch format version 99" in capsys.readouterr().err
    assert not paths.runner_lock.exists()  # it never claimed the job
