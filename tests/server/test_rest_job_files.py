"""REST reads of what a job wrote never follow the links it left: its log and its output
notebook replaced by symlinks to a host file do not reveal that file."""

from __future__ import annotations

import uuid
from pathlib import Path

from jupyter_mlws import Workspace
from tests.server.conftest import Api
from tests.server.test_rest import error


async def test_logs_and_output_notebook_links_are_refused(api: Api, ws: Workspace,
                                                         jp_root_dir: Path,
                                                         tmp_path: Path) -> None:
    marker = f"SECRET_{uuid.uuid4().hex}"
    secret = tmp_path / "host-secret.txt"
    secret.write_text(marker + "\n")
    job = ws.jobs.submit_command(
        f"echo hello; ln -sf {secret} $MLWS_RUN_DIR/../logs/job.log; "
        f"ln -sf {secret} $MLWS_RUN_DIR/../notebook/output.ipynb")
    assert ws.jobs.wait(job.id, timeout=120).status == "Completed"
    for params in ({"offset": 0}, {"tail": 5}):
        reply = await api.get(f"/jobs/{job.id}/logs", params=params)
        assert reply.code == 200 and marker not in reply.body.decode()
    body = error(await api.post(f"/jobs/{job.id}/output-notebook"), 400)
    assert "symbolic link" in body["message"] and marker not in body["message"]
    assert not any(marker in p.read_text(errors="replace")
                   for p in jp_root_dir.rglob("*") if p.is_file())
