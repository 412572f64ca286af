"""One contract, every backend: the same tests over SQLite and a real PostgreSQL server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws.errors import AssetNotFoundError, NotFoundError, VersionConflictError
from jupyter_mlws.jobs.model import JobStatus
from jupyter_mlws.store.base import NewVersion
from jupyter_mlws.store.sql import SqlStore


def nv(name: str, version: str | None = None, content: str = "a", kind: str = "model",
       **kw: Any) -> NewVersion:
    sha = hashlib.sha256(content.encode()).hexdigest()
    spec = {"type": "custom_model",
            "artifact": {"kind": "file", "sha256": sha, "size": 1, "name": "f"}}
    return NewVersion(kind=kind, name=name, version=version, content_hash=sha, spec=spec, **kw)


# --- versions ---------------------------------------------------------------------------------

def test_versions_count_up_and_latest_skips_archived(store: SqlStore) -> None:
    created = [store.create_version(nv("clf", content=str(i))) for i in range(3)]
    assert [(e.version, new) for e, new in created] == [("1", True), ("2", True), ("3", True)]
    assert store.get_version("model", "clf").version == "3"
    assert store.set_archived("model", "clf", "3", True) == 1
    assert store.get_version("model", "clf").version == "2"
    assert store.get_version("model", "clf", "3").archived
    assert [e.version for e in store.list_versions("model", "clf")] == ["2", "1"]
    assert [e.version for e in store.list_versions("model", "clf", include_archived=True)] == [
        "3", "2", "1"]
    assert store.set_archived("model", "clf", None, True) == 3
    with pytest.raises(AssetNotFoundError, match="archived"):
        store.get_version("model", "clf")
    assert store.set_archived("model", "clf", None, False) == 3
    assert store.get_version("model", "clf").version == "3"


def test_explicit_versions_then_the_next_integer(store: SqlStore) -> None:
    assert store.create_version(nv("m", "v1-beta", "a"))[0].version == "v1-beta"
    assert store.create_version(nv("m", "5", "b"))[0].version == "5"
    assert store.create_version(nv("m", None, "c"))[0].version == "6"
    assert store.create_version(nv("m", "2", "d"))[0].version == "2"
    assert store.create_version(nv("m", None, "e"))[0].version == "7"
    assert store.get_version("model", "m").version == "7"  # latest is the newest registered


def test_same_version_same_content_is_idempotent_other_content_conflicts(
    store: SqlStore,
) -> None:
    first, created = store.create_version(nv("m", "1", "a"))
    again, created_again = store.create_version(nv("m", "1", "a", description="again"))
    assert created and not created_again
    assert (again.version, again.created_at) == (first.version, first.created_at)
    with pytest.raises(VersionConflictError, match="already exists"):
        store.create_version(nv("m", "1", "other"))
    assert store.count_versions("model", "m") == 1


def test_reuse_identical_latest(store: SqlStore) -> None:
    store.create_version(nv("env", None, "a", kind="environment", reuse_identical_latest=True))
    same, created = store.create_version(
        nv("env", None, "a", kind="environment", reuse_identical_latest=True))
    assert (same.version, created) == ("1", False)
    other, created = store.create_version(
        nv("env", None, "b", kind="environment", reuse_identical_latest=True))
    assert (other.version, created) == ("2", True)


def test_not_found_says_what_exists(store: SqlStore) -> None:
    with pytest.raises(AssetNotFoundError, match="No model .* is registered yet"):
        store.get_version("model", "nope")
    store.create_version(nv("known"))
    with pytest.raises(AssetNotFoundError, match="Known model names: known"):
        store.get_version("model", "nope")
    with pytest.raises(AssetNotFoundError, match="no version '9'.*1"):
        store.get_version("model", "known", "9")
    with pytest.raises(AssetNotFoundError):
        store.set_archived("model", "nope", None, True)
    with pytest.raises(AssetNotFoundError):
        store.update_metadata("model", "known", "9", description="x")


def test_tags_filters_and_metadata_updates(store: SqlStore) -> None:
    store.create_version(nv("a", content="1", tags={"stage": "prod", "team": "x"}))
    store.create_version(nv("b", content="2", tags={"stage": "dev"}))
    store.create_version(nv("c", content="3"))
    names = lambda **kw: [e.name for e in store.list_versions("model", **kw)]  # noqa: E731
    assert names(tags={"stage": "prod"}) == ["a"]
    assert names(tags={"stage": None}) == ["a", "b"]
    assert names(tags={"stage": "prod", "team": "x"}) == ["a"]
    assert names(tags={"stage": "prod", "team": "y"}) == []
    assert store.count_versions("model", tags={"stage": None}) == 2
    updated = store.update_metadata("model", "b", "1", description="now prod",
                                    set_tags={"stage": "prod", "new": "1"}, remove_tags=["x"])
    assert updated.tags == {"stage": "prod", "new": "1"} and updated.description == "now prod"
    store.update_metadata("model", "a", "1", remove_tags=["stage"])
    assert names(tags={"stage": "prod"}) == ["b"]
    assert store.get_version("model", "a", "1").tags == {"team": "x"}


def test_listing_names_pages_and_filters(store: SqlStore) -> None:
    for name in ["delta", "alpha", "Charlie", "bravo", "echo"]:
        store.create_version(nv(name, content=name))
        store.create_version(nv(name, content=name + "2"))
    store.create_version(nv("hidden-one", content="h", hidden=True))
    store.set_archived("model", "echo", None, True)
    assert [e.name for e in store.list_versions("model")] == [
        "Charlie", "alpha", "bravo", "delta"]
    assert all(e.version == "2" for e in store.list_versions("model"))
    assert store.count_versions("model") == 4
    assert [e.name for e in store.list_versions("model", limit=2, offset=1)] == ["alpha", "bravo"]
    assert [e.name for e in store.list_versions("model", limit=2, offset=3)] == ["delta"]
    assert store.list_versions("model", limit=2, offset=9) == []
    assert "hidden-one" in [e.name for e in store.list_versions("model", include_hidden=True)]
    assert "echo" in [e.name for e in store.list_versions("model", include_archived=True)]
    assert [e.name for e in store.list_versions("model", name_contains="HAR")] == ["Charlie"]
    assert store.count_versions("model", name_contains="a") == 4  # alpha bravo Charlie delta
    assert store.names("model") == ["Charlie", "alpha", "bravo", "delta", "echo"]
    assert "hidden-one" in store.names("model", include_hidden=True)
    assert store.list_versions("data") == [] and store.count_versions("data") == 0


def test_paging_the_versions_of_a_name(store: SqlStore) -> None:
    for i in range(7):
        store.create_version(nv("m", content=str(i)))
    page = lambda o: [e.version for e in store.list_versions("model", "m", limit=3, offset=o)]  # noqa: E731
    assert [page(0), page(3), page(6)] == [["7", "6", "5"], ["4", "3", "2"], ["1"]]
    assert store.count_versions("model", "m") == 7


def test_secrets_are_kept_beside_their_version(store: SqlStore) -> None:
    store.create_version(nv("blob", "1", kind="datastore", secret={"account_key": "s3cr3t"}))
    store.create_version(nv("plain", "1", kind="datastore"))
    assert store.get_secret("datastore", "blob", "1") == {"account_key": "s3cr3t"}
    assert store.get_secret("datastore", "plain", "1") is None
    assert store.get_secret("datastore", "nope", "1") is None
    assert "s3cr3t" not in str(store.get_version("datastore", "blob").spec)


def test_lookups_meta_builds_and_referenced_artifacts(store: SqlStore) -> None:
    env_hash = "ab" * 32
    store.create_version(nv("env", kind="environment", env_hash=env_hash))
    store.create_version(nv("out", content="o", job_id="job-1"))
    assert [e.name for e in store.find_by_env_hash(env_hash)] == ["env"]
    assert [e.name for e in store.find_by_env_hash(env_hash[:12])] == ["env"]
    assert [e.name for e in store.find_by_job("job-1")] == ["out"]
    assert store.get_meta("k") is None
    store.set_meta("k", "v1")
    store.set_meta("k", "v2")
    assert store.get_meta("k") == "v2"
    store.record_build(env_hash, "docker", status="building", environment="env:1")
    store.record_build(env_hash, "docker", status="succeeded", result={"image": "i"}, log="ok")
    build = store.get_build(env_hash, "docker")
    assert build is not None and build["status"] == "succeeded"
    assert build["result"] == {"image": "i"} and build["log"] == "ok"
    assert [b["builder"] for b in store.list_builds("docker")] == ["docker"]
    assert store.list_builds("venv") == []
    snapshot = {"kind": "folder", "sha256": "cd" * 32, "size": 3, "file_count": 1, "name": "c"}
    store.create_job(_job("job-2", spec={"snapshot": snapshot}))
    shas = {a["sha256"] for a in store.all_artifact_specs()}
    assert snapshot["sha256"] in shas  # a job's code snapshot is a reference too
    assert hashlib.sha256(b"o").hexdigest() in shas


# --- jobs -------------------------------------------------------------------------------------

def _job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": job_id, "type": "command", "status": "Queued", "compute": "local",
            "experiment": "default", "spec": {}, **fields}


def test_job_rows_and_transitions(store: SqlStore) -> None:
    job = store.create_job(_job("j1", display_name="first"), params={"lr": 0.1},
                           io=[{"direction": "input", "name": "x", "type": "string",
                                "value": "\"1\""}])
    assert (job.status, job.display_name, job.cancel_requested) == ("Queued", "first", False)
    store.create_job(_job("j2", experiment="exp"))
    store.create_job(_job("j2-step", parent_id="j2", step_name="s"))
    assert store.transition_job("j1", JobStatus.RUNNING, message="go", only_from=["Queued"])
    assert not store.transition_job("j1", JobStatus.RUNNING, only_from=["Queued"])
    running = store.get_job("j1")
    assert running.status == "Running" and running.started_at is not None
    assert store.transition_job("j1", JobStatus.COMPLETED, result={"ok": 1})
    assert not store.transition_job("j1", JobStatus.FAILED)  # terminal jobs never move
    done = store.get_job("j1")
    assert (done.status, done.result) == ("Completed", {"ok": 1}) and done.ended_at is not None
    assert [(e.status, e.message) for e in store.job_events("j1")] == [
        ("Queued", None), ("Running", "go"), ("Completed", None)]
    assert {j.id for j in store.list_jobs()} == {"j1", "j2"}  # steps are not top level
    assert [j.id for j in store.list_jobs(parent_id="j2")] == ["j2-step"]
    assert [j.id for j in store.list_jobs(experiment="exp")] == ["j2"]
    assert [j.id for j in store.list_jobs(status=["Completed"])] == ["j1"]
    assert len(store.list_jobs(limit=1)) == 1
    assert store.count_jobs() == 3 and store.count_jobs(top_level=True) == 2
    assert store.count_jobs(status=["Queued"]) == 2
    assert {j.id for j in store.iter_active_jobs()} == {"j2", "j2-step"}
    with pytest.raises(NotFoundError, match="No job 'nope'"):
        store.get_job("nope")


def test_job_metrics_params_io_and_lineage(store: SqlStore) -> None:
    store.create_job(_job("j1"), params={"lr": 0.1, "layers": [1, 2]})
    assert store.job_params("j1") == {"lr": 0.1, "layers": [1, 2]}
    store.set_job_params("j1", {"lr": 0.2, "seed": 3})
    assert store.job_params("j1") == {"lr": 0.2, "layers": [1, 2], "seed": 3}
    assert store.add_metrics("j1", [{"key": "loss", "value": 0.5, "step": 1},
                                    {"key": "loss", "value": 0.25, "step": 2}]) == 2
    assert [(m.key, m.value, m.step) for m in store.job_metrics("j1")] == [
        ("loss", 0.5, 1), ("loss", 0.25, 2)]
    store.set_job_io("j1", "input", [{"name": "train", "type": "uri_folder", "uri": "/d",
                                      "asset_kind": "data", "asset_name": "train",
                                      "asset_version": "3"}])
    store.set_job_io("j1", "output", [{"name": "model", "type": "uri_folder", "uri": "/o"}])
    store.set_job_io("j1", "output", [{"name": "model2", "type": "uri_folder", "uri": "/o2"}])
    io = store.job_io("j1")
    assert [(i.direction, i.name, i.asset) for i in io] == [
        ("input", "train", "data:train:3"), ("output", "model2", None)]
    assert store.jobs_using("data", "train", "3") == ["j1"]
    assert store.jobs_using("data", "train", "4") == []
    store.update_job("j1", runner_pid=4242, image="img")
    assert (store.get_job("j1").runner_pid, store.get_job("j1").image) == (4242, "img")
    assert store.request_cancel("j1").cancel_requested
    store.transition_job("j1", JobStatus.CANCELED)
    store.create_job(_job("j3"))
    assert store.transition_job("j3", JobStatus.FAILED, error="boom")
    assert not store.request_cancel("j3").cancel_requested  # terminal: nothing to cancel


# --- concurrency ------------------------------------------------------------------------------

RACER = """
import hashlib, sys
from jupyter_mlws.store.base import NewVersion
from jupyter_mlws.store.sql import SqlStore
store = SqlStore(sys.argv[1])
sys.stdin.readline()  # all processes start writing together
for i in range(4):
    content = f"{sys.argv[2]}-{i}"
    sha = hashlib.sha256(content.encode()).hexdigest()
    e, _ = store.create_version(NewVersion(kind="model", name="racer", version=None,
                                           content_hash=sha, spec={"n": content}))
    print(e.version)
"""


def test_concurrent_registrations_from_processes_get_contiguous_versions(
    store: SqlStore, store_uri: str, tmp_path: Path
) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", RACER, store_uri, str(i)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
             for i in range(4)]
    n = 4 * len(procs)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=120) for p in procs]
    assert [err for (_o, err), p in zip(results, procs) if p.returncode] == []
    assert sorted(int(v) for out, _ in results for v in out.split()) == list(range(1, n + 1))
    stored = store.list_versions("model", "racer")
    assert len({e.content_hash for e in stored}) == n
    assert [e.version for e in stored] == [str(v) for v in range(n, 0, -1)]  # seq = version
