"""The lock format and the errors a lock that no longer installs gives (pip's and uv's words)."""

from __future__ import annotations

import json
import subprocess
import sys

from jupyter_mlws.environments.locks import (
    REPORT_SCRIPT,
    lock_failure,
    lock_lines_from_log,
    one_line_requirements,
    parse_lock,
    render_lock,
)
from jupyter_mlws.environments.uv_tool import image_uv_environment

LOCK = render_lock(["six==1.16.0 --hash=sha256:aa", "idna==3.7"], env_hash="h" * 64,
                   python="3.11", tool="pip")


def test_render_and_parse() -> None:
    lock = parse_lock(LOCK)
    assert lock.python == "3.11" and lock.pins() == {"six": "1.16.0", "idna": "3.7"}
    assert not lock.require_hashes  # idna has no hash: installed without --require-hashes
    assert parse_lock(render_lock(["a==1 --hash=sha256:x"], env_hash="h", python=None,
                                  tool="uv")).require_hashes


def test_uv_compile_format_reads_like_pip_lines() -> None:
    text = ["six==1.17.0 \\", "    --hash=sha256:aa \\", "    --hash=sha256:bb",
            "    # via -r requirements.txt"]
    assert one_line_requirements(text) == ["six==1.17.0 --hash=sha256:aa --hash=sha256:bb"]
    log = "\n".join(["x", "--- mlws lock (pip --require-hashes) ---", "# python 3.11", *text,
                     "--- end of mlws lock ---"])
    assert lock_lines_from_log(log) == ["six==1.17.0 --hash=sha256:aa --hash=sha256:bb"]
    assert lock_lines_from_log("no markers") is None


def test_missing_version_errors_name_the_package() -> None:
    pip = ("ERROR: Could not find a version that satisfies the requirement six==1.16.0 "
           "(from versions: 1.17.0)\nERROR: No matching distribution found for six==1.16.0")
    uv = ("  x No solution found when resolving dependencies:\n  `-> Because there is no "
          "version of six==1.16.0 and you require six==1.16.0, we can conclude ...")
    for text in (pip, uv):
        err = lock_failure(text, parse_lock(LOCK), "env:1")
        assert err is not None and err.details["package"] == "six"
        assert err.details["version"] == "1.16.0" and "env:1 --update six" in str(err.hint)
    assert lock_failure("some other failure", parse_lock(LOCK), "env:1") is None


def test_report_script_runs_on_its_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = {"install": [{"metadata": {"name": "Foo_Bar", "version": "1.0"},
                           "download_info": {"archive_info": {"hashes": {"sha256": "ab"}}}},
                          {"metadata": {"name": "x", "version": "2"}, "download_info": {}}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    out = subprocess.run([sys.executable, "-c", REPORT_SCRIPT, str(path)], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[:2] == ["foo-bar==1.0 --hash=sha256:ab", "x==2"]


def test_image_uv_settings_come_from_pip_config_and_skip_local_indexes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLWS_PIP_INDEX_URL", "https://mirror.invalid/simple file:///srv/simple")
    env = image_uv_environment()
    assert env["UV_INDEX_URL"] == "https://mirror.invalid/simple"
    assert "UV_EXTRA_INDEX_URL" not in env and env["UV_INDEX_STRATEGY"] == "unsafe-best-match"


def test_store_keys_fit_the_meta_table() -> None:
    """workspace_meta.key is VARCHAR(64) (PostgreSQL enforces it)."""
    from jupyter_mlws.environments.locks import lock_index_key, lock_meta_key
    from jupyter_mlws.store.rows import MetaRow

    limit = MetaRow.__table__.c.key.type.length
    h = "f" * 64
    assert len(lock_meta_key(h, "image")) <= limit and len(lock_meta_key(h, "3.13")) <= limit
    assert len(lock_index_key(h)) <= limit
