"""The `mlws` command, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jupyter_mlws.cli import main


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
        return result.output

    run("workspace", "init", ".")
    return run


def test_model_lifecycle(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "w.bin").write_bytes(b"weights")
    assert "Registered model clf:1" in cli("model", "create", "-n", "clf", "-p", "w.bin",
                                           "--tag", "stage=dev")
    cli("model", "create", "-n", "clf", "-p", "w.bin")
    table = cli("model", "list", "-n", "clf")
    assert table.splitlines()[0].split()[:3] == ["NAME", "VERSION", "TYPE"]
    assert len(table.splitlines()) == 3
    data = json.loads(cli("model", "list", "-n", "clf", "-o", "json"))
    assert [d["version"] for d in data] == ["2", "1"]
    shown = json.loads(cli("model", "show", "clf:1", "-o", "json"))
    assert shown["tags"] == {"stage": "dev"} and shown["size"] == 7
    cli("model", "archive", "clf", "--version", "2")
    assert json.loads(cli("model", "show", "clf", "-o", "json"))["version"] == "1"
    cli("model", "restore", "clf")
    out = cli("model", "download", "clf", "-v", "1", "-d", "dl")
    assert Path(out.strip()).read_bytes() == b"weights"
    updated = json.loads(cli("model", "update", "clf:1", "--tag", "stage=prod", "-o", "json"))
    assert updated["tags"] == {"stage": "prod"}


def test_errors_are_one_line_and_exit_non_zero(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("model", "show", "nope", ok=False)
    assert "error: No model named 'nope'" in out and "Traceback" not in out
    out = cli("env", "create", "-n", "MLWS-mine", "--image", "x", ok=False)
    assert "reserved" in out and "--from" in out


def test_environment_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "req.txt").write_text("six==1.16.0\n")
    out = cli("env", "create", "-n", "e", "--pip-requirements", "req.txt")
    assert "hash:" in out and "mlws/mlws_" in out
    (tmp_path / "req.txt").write_text("six==1.17.0\n")
    cli("env", "create", "-n", "e", "--pip-requirements", "req.txt")
    diff = cli("env", "diff", "e", "1", "2")
    assert "changes: a new image" in diff and "six==1.16.0 -> six==1.17.0" in diff
    copied = cli("env", "create", "--from", "MLWS-python-3.11-minimal", "--name", "mine")
    assert "Registered environment mine:1" in copied
    names = [r["name"] for r in json.loads(cli("env", "list", "-o", "json"))]
    assert "MLWS-python-3.11-minimal" in names and "mine" in names
    (tmp_path / "env.yml").write_text("name: y\nimage: b\npip_requirements: [six]\n")
    h = cli("env", "hash", "-f", "env.yml").split()
    assert len(h[0]) == 64 and h[1] == "mlws/mlws_" + h[0][:32]


def test_create_any_kind_from_yaml(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    (tmp_path / "data.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json\n"
        "name: tbl\ntype: uri_file\npath: d.csv\n")
    assert "Registered data tbl:1" in cli("create", "-f", "data.yml")
    assert "Registered data tbl:2" in cli("data", "create", "-f", "data.yml")
    (tmp_path / "pinned.yml").write_text("name: tbl\nversion: 2\ntype: uri_file\npath: d.csv\n")
    assert "Registered data tbl:2" in cli("data", "create", "-f", "pinned.yml")  # idempotent
    (tmp_path / "d.csv").write_text("changed\n")
    assert "already exists with different content" in cli("data", "create", "-f", "pinned.yml",
                                                          ok=False)


def test_datastore_credentials_never_printed(cli) -> None:  # type: ignore[no-untyped-def]
    cli("datastore", "create", "-n", "lake", "--type", "fsspec", "--url", "s3://b/p",
        "--credential", "key=SUPERSECRET")
    for args in (("datastore", "list"), ("datastore", "show", "lake"),
                 ("datastore", "show", "lake", "-o", "json"), ("datastore", "list", "-o", "yaml")):
        assert "SUPERSECRET" not in cli(*args)
    assert "key=***" in cli("datastore", "show", "lake")


def test_compute_and_workspace(cli) -> None:  # type: ignore[no-untyped-def]
    cli("compute", "create", "-n", "box", "--type", "docker", "--max-concurrent", "3",
        "--cpus", "1.5", "--memory", "2g")
    shown = json.loads(cli("compute", "show", "box", "-o", "json"))
    assert shown["spec"]["cpus"] == 1.5 and shown["max_concurrent_jobs"] == 3
    out = cli("compute", "create", "-n", "bad", "--type", "slurm", ok=False)
    assert "unknown compute type" in out and "local" in out
    info = json.loads(cli("workspace", "show", "-o", "json"))
    assert info["counts"]["compute"] == 2


def test_the_installed_command_exits_non_zero(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "MLWS_WORKSPACE": str(tmp_path / "w")}
    proc = subprocess.run([sys.executable, "-m", "jupyter_mlws.cli", "model", "show", "x"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: No model named 'x'")


# --- datastore credentials off the command line ----------------------------------------------------

def _invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)


def _stored(name: str) -> dict[str, str]:
    from jupyter_mlws import Workspace

    ws = Workspace.open(".")
    try:
        return ws.datastores.credentials(name)
    finally:
        ws.close()


def test_datastore_credential_prompts_with_hidden_input(cli) -> None:  # type: ignore[no-untyped-def]
    result = _invoke("datastore", "create", "-n", "s1", "--type", "fsspec", "--url",
                     "memory://bucket", "--credential", "key", "--credential", "token",
                     input="topsecret\nt0ken-value\n")
    assert result.exit_code == 0, result.output
    assert "Value of credential key" in result.output
    assert "topsecret" not in result.output and "t0ken-value" not in result.output
    assert "warning" not in result.output
    assert _stored("s1") == {"key": "topsecret", "token": "t0ken-value"}
    shown = cli("datastore", "show", "s1", "-o", "json")
    assert "topsecret" not in shown and "t0ken-value" not in shown


def test_datastore_credentials_from_env_and_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "creds.yml").write_text("key: from-file\nsecret: s3cr3t-file\n")
    (tmp_path / "creds.json").write_text('{"key": "json-key"}')
    result = _invoke("datastore", "create", "-n", "s2", "--type", "fsspec", "--url",
                     "memory://bucket", "--credential-file", "creds.yml",
                     "--credential-env", "key=MY_KEY", env={"MY_KEY": "env-value"})
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    assert "s3cr3t-file" not in result.output and "env-value" not in result.output
    assert _stored("s2") == {"key": "env-value", "secret": "s3cr3t-file"}  # env wins
    result = _invoke("datastore", "create", "-n", "s3", "--type", "fsspec", "--url",
                     "memory://bucket", "--credential-file", "creds.json")
    assert result.exit_code == 0 and _stored("s3") == {"key": "json-key"}


def test_datastore_credential_errors_never_show_the_secret(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bad.yml").write_text("key: [hunter2-secret]\n")
    (tmp_path / "broken.yml").write_text("key: 'hunter2-secret\n  other: {\n")
    for args in (["--credential-file", "bad.yml"], ["--credential-file", "broken.yml"],
                 ["--credential-env", "key=MLWS_TEST_UNSET_VAR"]):
        out = cli("datastore", "create", "-n", "s4", "--type", "fsspec", "--url",
                  "memory://bucket", *args, ok=False)
        assert out.startswith("error: ") and "hunter2" not in out, out
        assert "Traceback" not in out


def test_datastore_credential_on_argv_still_works_but_warns(cli) -> None:  # type: ignore[no-untyped-def]
    result = _invoke("datastore", "create", "-n", "s5", "--type", "fsspec", "--url",
                     "memory://bucket", "--credential", "key=argv-secret")
    assert result.exit_code == 0, result.output
    assert "warning: --credential key=VALUE" in result.output
    assert "--credential-env" in result.output and "argv-secret" not in result.output
    assert _stored("s5") == {"key": "argv-secret"}
