"""What a job can do to the host: symlinks it leaves must never make the host reveal a host file,
a container never runs as root nor writes launch.json.

The Docker tests need a real engine and the base image (see test_docker_jobs.py): they fail in
CI when the engine is missing.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import UnsafePathError
from tests.jobs.test_docker_jobs import dws, engine  # noqa: F401 - fixtures


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    """A host file outside the workspace with a marker no job output contains by chance."""
    marker = f"SECRET_{uuid.uuid4().hex}"
    path = tmp_path / "host-secret" / "secret.txt"
    path.parent.mkdir()
    path.write_text(marker + "\n")
    return path, marker


def _all_text(folder: Path) -> str:
    out = []
    for p in folder.rglob("*"):
        if p.is_file():
            out.append(p.read_text(errors="replace"))
    return "\n".join(out)


def test_docker_output_symlinks_are_refused_on_registration_and_download(
        dws: Workspace, secret: tuple[Path, str], tmp_path: Path) -> None:  # noqa: F811
    path, marker = secret
    job = dws.jobs.submit_command(
        f"echo real > ${{{{outputs.o}}}}/real.txt; ln -s {path} ${{{{outputs.o}}}}/leak.txt; "
        f"ln -s {path.parent} ${{{{outputs.o}}}}/leakdir; "
        f"rmdir ${{{{outputs.evil}}}} && ln -s {path.parent} ${{{{outputs.evil}}}}; "
        f"ln -s {path} $MLWS_RUN_DIR/../notebook/leak.ipynb; echo planted",
        compute="box", outputs={"o": {"type": "uri_folder"}, "evil": {"type": "uri_folder"}})
    done = dws.jobs.wait(job.id, timeout=300)
    assert done.status == "Completed", dws.jobs.logs(job.id)
    assert "planted" in dws.jobs.logs(job.id)
    outputs = dws.jobs.paths(job.id).outputs
    assert (outputs / "evil").is_symlink()  # the job did plant them
    assert (outputs / "o" / "leak.txt").is_symlink()
    with pytest.raises(UnsafePathError, match="symbolic link"):
        dws.models.create("evil", f"mlws://jobs/{job.id}/outputs/evil")
    with pytest.raises(UnsafePathError):
        dws.data.create("evil", f"mlws://jobs/{job.id}/outputs/evil")
    with pytest.raises(UnsafePathError, match="outside the folder"):
        dws.models.create("leaky", f"mlws://jobs/{job.id}/outputs/o")
    target = dws.jobs.download(job.id, tmp_path / "dl")
    assert (target / "outputs" / "o" / "real.txt").read_text() == "real\n"
    assert not (target / "outputs" / "o" / "leak.txt").exists()
    assert not (target / "outputs" / "evil").exists()
    assert marker not in _all_text(target)
    assert not any(p.is_symlink() for p in target.rglob("*"))


def test_docker_job_cannot_write_launch_json_or_its_log_and_is_not_root(
        dws: Workspace, secret: tuple[Path, str]) -> None:  # noqa: F811
    path, marker = secret
    root = "$MLWS_RUN_DIR/.."
    job = dws.jobs.submit_command(
        f"echo uid=$(id -u); echo '{{}}' > {root}/launch.json 2>/dev/null && echo LAUNCH_WRITTEN; "
        f"rm -f {root}/launch.json 2>/dev/null && echo LAUNCH_REMOVED; "
        f"ln -sf {path} {root}/logs/job.log 2>/dev/null && echo LOG_REPLACED; "
        f"ln -sf {path} {root}/logs/prepare.log 2>/dev/null && echo PREPARE_REPLACED; "
        "echo tmp > /tmp/t && cat /tmp/t; echo home=$HOME; echo done",
        compute="box")
    done = dws.jobs.wait(job.id, timeout=300)
    log = dws.jobs.logs(job.id)
    assert done.status == "Completed", log
    assert "done" in log and "tmp\nhome=/tmp" in log
    for refused in ("LAUNCH_WRITTEN", "LAUNCH_REMOVED", "LOG_REPLACED", "PREPARE_REPLACED"):
        assert refused not in log
    assert "uid=0" not in log and "uid=" in log
    assert '"job_id"' in dws.jobs.paths(job.id).launch.read_text()
    assert marker not in log
    assert marker not in dws.jobs.read_log(job.id)["text"]


def test_a_log_replaced_by_a_symlink_is_not_shown(jws: Workspace,
                                                 secret: tuple[Path, str]) -> None:
    """A local job (same user as the host) can replace its log: every log read refuses it."""
    path, marker = secret
    job = jws.jobs.submit_command(
        f"echo before; ln -sf {path} $MLWS_RUN_DIR/../logs/job.log; "
        f"ln -s {path} $MLWS_RUN_DIR/metrics.jsonl; ln -s {path} $MLWS_RUN_DIR/params.jsonl")
    done = jws.jobs.wait(job.id, timeout=120)
    assert done.status == "Completed"
    assert jws.jobs.paths(job.id).job_log.is_symlink()
    text = jws.jobs.logs(job.id)
    assert marker not in text and "job.log is not shown" in text
    assert marker not in jws.jobs.logs(job.id, tail=5)
    assert marker not in jws.jobs.read_log(job.id)["text"]
    assert marker not in jws.jobs.read_log_tail(job.id, 5)["text"]
    assert jws.jobs.read_log(job.id)["done"]
    assert jws.jobs.metrics(job.id) == [] and jws.jobs.params(job.id) == {}


def test_safe_reads_refuse_links_and_special_files(tmp_path: Path,
                                                   secret: tuple[Path, str]) -> None:
    import os

    from jupyter_mlws.jobs.safe_files import (
        check_job_path,
        copy_job_tree,
        job_file_size,
        read_job_bytes,
        read_job_json,
    )

    path, marker = secret
    root = tmp_path / "job"
    (root / "out" / "sub").mkdir(parents=True)
    (root / "out" / "ok.txt").write_text("ok")
    (root / "out" / "sub" / "deep.txt").write_text("deep")
    (root / "out" / "link").symlink_to(path)
    (root / "out" / "inside").symlink_to(root / "out" / "ok.txt")
    os.mkfifo(root / "out" / "fifo")
    (root / "dirlink").symlink_to(path.parent, target_is_directory=True)
    assert read_job_bytes(root / "out" / "ok.txt", root) == b"ok"
    for bad in (root / "out" / "link", root / "out" / "fifo", root / "dirlink" / "secret.txt",
                root / "out" / "inside"):
        with pytest.raises(UnsafePathError):
            read_job_bytes(bad, root)
        assert job_file_size(bad, root) == 0
        assert read_job_json(bad, root) == {}
    with pytest.raises(UnsafePathError):
        check_job_path(root / "dirlink", root)
    with pytest.raises(UnsafePathError):
        read_job_bytes(path, root)  # not inside the job folder at all
    skipped = copy_job_tree(root / "out", tmp_path / "copy", root)
    assert sorted(skipped) == ["fifo", "inside", "link"]
    assert (tmp_path / "copy" / "sub" / "deep.txt").read_text() == "deep"
    assert marker not in _all_text(tmp_path / "copy")


def test_a_running_jobs_outputs_cannot_be_registered(jws: Workspace) -> None:
    """While a job runs it could swap a file for a link under the reader: wait for its end."""
    from jupyter_mlws.errors import ConflictError
    from tests.jobs.test_notebook_jobs import wait_for

    job = jws.jobs.submit_command("echo x > ${{outputs.o}}/x.txt; echo started; sleep 60",
                                  outputs={"o": {"type": "uri_folder"}})
    wait_for(lambda: "started" in jws.jobs.logs(job.id), timeout=120)
    with pytest.raises(ConflictError, match="is still"):
        jws.models.create("early", f"mlws://jobs/{job.id}/outputs/o")
    jws.jobs.cancel(job.id)
    jws.jobs.wait(job.id, timeout=60)
    assert jws.models.create("late", f"mlws://jobs/{job.id}/outputs/o").version == "1"


def test_a_local_job_does_not_get_the_secret_key(jws: Workspace,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The key that opens every stored credential stays with the workspace, not the job."""
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    monkeypatch.setenv("MLWS_SECRET_KEY", key)
    job = jws.jobs.submit_command('echo "key=[${MLWS_SECRET_KEY:-}]"; env')
    done = jws.jobs.wait(job.id, timeout=120)
    assert done.status == "Completed", jws.jobs.logs(job.id)
    text = jws.jobs.logs(job.id)
    assert "key=[]" in text and key not in text


def test_a_failed_steps_log_replaced_by_a_symlink_is_not_quoted(
        tmp_path: Path, secret: tuple[Path, str]) -> None:
    """A pipeline quotes the last line a failed step printed; it reads the step's log as a
    job-written file, never through a link."""
    from jupyter_mlws.jobs.pipeline import _cause

    path, marker = secret
    step = tmp_path / "jobs" / "step1"
    (step / "logs").mkdir(parents=True)
    (step / "logs" / "job.log").symlink_to(path)
    cause = _cause("exit 1", step / "logs" / "job.log", step)
    assert marker not in cause
    assert cause == "exit 1"
    (step / "logs" / "job.log").unlink()
    (step / "logs" / "job.log").write_text("loading\nValueError: bad lr\n")
    assert _cause("exit 1", step / "logs" / "job.log", step) == (
        "exit 1 (last output: ValueError: bad lr)")


def test_metrics_are_not_read_through_a_linked_run_folder(tmp_path: Path) -> None:
    """The run folder is the job's: a link in place of it (not only of the file) is refused."""
    from jupyter_mlws.compute.base import _read_new_lines

    job = tmp_path / "jobs" / "j1"
    job.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "metrics.jsonl").write_text('{"key": "leak", "value": 1}\n')
    (job / "run").symlink_to(elsewhere, target_is_directory=True)
    assert _read_new_lines(job / "run" / "metrics.jsonl", 0, job) == ([], 0)
    (job / "run").unlink()
    (job / "run").mkdir()
    (job / "run" / "metrics.jsonl").write_text('{"key": "acc", "value": 1}\n{"key": "ha')
    lines, offset = _read_new_lines(job / "run" / "metrics.jsonl", 0, job)
    assert lines == [{"key": "acc", "value": 1}] and offset == 27


def test_the_ray_log_copy_never_appends_through_a_link(tmp_path: Path) -> None:
    """On Ray the nodes share the job's folder read-write: a job that puts a link in place of
    its log must not make the host runner append what the job printed to another file."""
    from jupyter_mlws.compute.ray.handle import RayJobHandle

    class Printed:  # what the Ray head reports the job printed (the log endpoint, and no more)
        def logs(self, submission_id: str) -> str:
            return "echo pwned >> ~/.bashrc\n"

    victim = tmp_path / "host" / ".bashrc"
    victim.parent.mkdir()
    victim.write_text("# the user's file\n")
    log = tmp_path / "jobs" / "r1" / "logs" / "job.log"
    log.parent.mkdir(parents=True)
    log.symlink_to(victim)
    handle = RayJobHandle.__new__(RayJobHandle)  # no follower thread: drive the copy directly
    handle.client, handle.submission_id = Printed(), "r1"  # type: ignore[assignment]
    handle._log_path, handle._written = log, 0
    with pytest.raises(OSError):
        handle._copy_logs()
    with pytest.raises(OSError):
        handle._note("the job ended")
    assert victim.read_text() == "# the user's file\n"
    log.unlink()
    assert handle._copy_logs() == len("echo pwned >> ~/.bashrc\n")
    handle._note("the job ended")
    assert log.read_text() == "echo pwned >> ~/.bashrc\n\n[mlws] the job ended\n"


def test_a_download_into_a_file_is_a_typed_error(jws: Workspace, tmp_path: Path) -> None:
    from jupyter_mlws.errors import ValidationError

    job = jws.jobs.submit_command("echo hi")
    assert jws.jobs.wait(job.id, timeout=120).status == "Completed"
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    with pytest.raises(ValidationError, match="cannot be copied into"):
        jws.jobs.download(job.id, not_a_folder)
    got = jws.jobs.download(job.id, tmp_path / "dl")
    assert (got / "logs" / "job.log").read_text().strip() == "hi"


def test_host_appends_to_job_logs_never_go_through_a_link(tmp_path: Path) -> None:
    """The prepare log and the notes at the top of the job log are appended by the host in the
    job's folder (shared read-write on Ray): a link planted there is refused, the line skipped."""
    from jupyter_mlws.compute.base import RunContext
    from jupyter_mlws.jobs.paths import JobPaths
    from jupyter_mlws.jobs.submit import _write_notes

    victim = tmp_path / "host" / ".bashrc"
    victim.parent.mkdir()
    victim.write_text("# the user's file\n")
    paths = JobPaths(tmp_path / "jobs" / "j1")
    paths.logs.mkdir(parents=True)
    paths.prepare_log.symlink_to(victim)
    paths.job_log.symlink_to(victim)
    ctx = RunContext.__new__(RunContext)  # only the paths are needed to append
    ctx.paths = paths
    ctx.prepare_log("echo pwned >> ~/.bashrc")
    _write_notes(paths, ["echo pwned >> ~/.bashrc"])
    assert victim.read_text() == "# the user's file\n"
    paths.prepare_log.unlink()
    paths.job_log.unlink()
    ctx.prepare_log("pulling image")
    _write_notes(paths, ["a note"])
    assert paths.prepare_log.read_text() == "pulling image\n"
    assert paths.job_log.read_text() == "[mlws] a note\n"
