"""The job state machine (compute/base.py), driven by a fake target and a fake handle.

The fakes subclass the real bases and are handed in (no patching); the job store is a real
SQLite store, and the target sees only a TargetServices, never a Workspace.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlws.assets.compute import Compute
from jupyter_mlws.compute.base import ComputeTarget, RunContext, Runtime
from jupyter_mlws.compute.services import JobRecords
from jupyter_mlws.errors import MlwsError
from jupyter_mlws.jobs.launch import Launch
from jupyter_mlws.jobs.model import JobStatus
from jupyter_mlws.jobs.paths import JobPaths
from jupyter_mlws.store import AbstractStore, open_store


class FakeServices:
    """A TargetServices: a real job store, folders in tmp, no environments."""

    def __init__(self, store: AbstractStore, root: Path) -> None:
        self._store = store
        self._root = root

    @property
    def jobs(self) -> JobRecords:
        return self._store

    @property
    def workspace_path(self) -> Path:
        return self._root

    @property
    def artifact_root(self) -> Path:
        return self._root / "artifacts"

    @property
    def envs_dir(self) -> Path:
        return self._root / "envs"

    @property
    def cache_dir(self) -> Path:
        return self._root / "cache"

    def environment(self, ref: str) -> Any:
        raise AssertionError("the fake target needs no environment")

    def lookup_environment(self, env: Any, builder: str) -> Any:
        raise AssertionError("the fake target needs no environment")

    def build_environment(self, env: Any, builder: str, log: Any = None) -> Any:
        raise AssertionError("the fake target needs no environment")


class FakeHandle:
    """A job that ends with ``code`` after ``polls`` polls, or runs until stopped."""

    def __init__(self, code: int | None, polls: int = 2,
                 on_poll: Callable[[int], None] | None = None,
                 status_of: Callable[[], str] | None = None) -> None:
        self.started_at = datetime.now(timezone.utc).timestamp()
        self._code = code
        self._polls_left = polls
        self._on_poll = on_poll
        self.polled = 0
        self.stopped = threading.Event()
        self.closed = False
        self._status_of = status_of
        self.status_at_close: str | None = None

    def poll(self) -> int | None:
        self.polled += 1
        if self._on_poll is not None:
            self._on_poll(self.polled)
        if self.stopped.is_set():
            return -15
        if self._code is not None and self._polls_left <= 0:
            return self._code
        self._polls_left -= 1
        return None

    def stop(self, grace: float = 0.0) -> None:
        self.stopped.set()

    def close(self) -> None:
        self.closed = True
        if self._status_of is not None:
            self.status_at_close = self._status_of()


class FakeTarget(ComputeTarget):
    """Prepares by calling ``on_prepare`` and starts the handle it was given."""

    kind = "fake"

    def __init__(self, services: FakeServices, compute: Compute, handle: FakeHandle,
                 on_prepare: Callable[[RunContext], None] | None = None) -> None:
        super().__init__(services, compute)
        self.handle = handle
        self.on_prepare = on_prepare
        self.started = False

    def prepare(self, ctx: RunContext) -> Runtime:
        ctx.prepare_log("[fake] preparing")
        if self.on_prepare is not None:
            self.on_prepare(ctx)
        return Runtime(python="/fake/python", env_hash="abc123")

    def start(self, ctx: RunContext, runtime: Runtime) -> FakeHandle:
        self.started = True
        return self.handle


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AbstractStore]:
    s = open_store(f"sqlite:///{tmp_path / 'jobs.db'}", lock_dir=tmp_path)
    yield s
    s.close()


@pytest.fixture
def services(store: AbstractStore, tmp_path: Path) -> FakeServices:
    return FakeServices(store, tmp_path)


COMPUTE = Compute(kind="compute", name="fake", version="1", content_hash="x",
                  created_at=datetime.now(timezone.utc), spec={"type": "fake"})
_counter = iter(range(10_000))


def new_run(services: FakeServices, *, timeout: float | None = None,
            kind: str = "command") -> RunContext:
    job_id = f"job_{next(_counter)}"
    store: Any = services.jobs
    store.create_job({"id": job_id, "type": kind, "status": JobStatus.QUEUED.value,
                      "compute": "fake", "spec": {}})
    paths = JobPaths.of(services.artifact_root, job_id)
    paths.make()
    launch = Launch(job_id=job_id, workspace=str(services.workspace_path), kind=kind,  # type: ignore[arg-type]
                    compute="fake", compute_kind="fake", slot_dir=str(services.cache_dir),
                    argv=["true"], cwd=str(paths.code), outputs={"model": "custom_model"},
                    timeout=timeout, package_dir=str(services.workspace_path))
    return RunContext(services, job_id, launch, paths)


def statuses(services: FakeServices, job_id: str) -> list[str]:
    store: Any = services.jobs
    return [e.status for e in store.job_events(job_id)]


def test_success_runs_through_every_state_and_records_outputs(services: FakeServices) -> None:
    ctx = new_run(services)
    (ctx.paths.outputs / "model").mkdir()
    handle = FakeHandle(0, status_of=lambda: services.jobs.get_job(ctx.job_id).status)
    final = FakeTarget(services, COMPUTE, handle).run(ctx)
    assert final == JobStatus.COMPLETED
    assert statuses(services, ctx.job_id) == ["Queued", "Preparing", "Running", "Completed"]
    job = services.jobs.get_job(ctx.job_id)
    assert job.image == "/fake/python" and job.env_hash == "abc123" and job.error is None
    assert job.started_at is not None and job.ended_at is not None
    store: Any = services.jobs
    outs = [io for io in store.job_io(ctx.job_id) if io.direction == "output"]
    assert [(o.name, o.type, o.uri) for o in outs] == [
        ("model", "custom_model", f"mlws://jobs/{ctx.job_id}/outputs/model")]
    assert "[fake] preparing" in ctx.paths.prepare_log.read_text()
    # the handle is released before the job is seen as ended
    assert handle.closed and handle.status_at_close == "Running"


def test_a_failing_exit_code_fails_the_job_naming_the_code(services: FakeServices) -> None:
    ctx = new_run(services)
    assert FakeTarget(services, COMPUTE, FakeHandle(3)).run(ctx) == JobStatus.FAILED
    job = services.jobs.get_job(ctx.job_id)
    assert job.status == "Failed" and "exited with code 3" in (job.error or "")


def test_a_job_past_its_timeout_is_stopped_and_failed(services: FakeServices) -> None:
    ctx = new_run(services, timeout=0.01)
    handle = FakeHandle(None)  # never ends by itself
    assert FakeTarget(services, COMPUTE, handle).run(ctx) == JobStatus.FAILED
    assert handle.stopped.is_set()
    assert "timed out after 0.01 s" in (services.jobs.get_job(ctx.job_id).error or "")


def test_cancel_while_running_stops_the_handle(services: FakeServices) -> None:
    ctx = new_run(services)

    def cancel_on_second_poll(n: int) -> None:
        if n == 2:
            ctx.paths.cancel_flag.touch()

    handle = FakeHandle(None, on_poll=cancel_on_second_poll)
    assert FakeTarget(services, COMPUTE, handle).run(ctx) == JobStatus.CANCELED
    assert handle.stopped.is_set()
    assert statuses(services, ctx.job_id) == ["Queued", "Preparing", "Running", "Canceled"]


def test_cancel_while_preparing_never_starts_the_job(services: FakeServices) -> None:
    ctx = new_run(services)
    store: Any = services.jobs
    target = FakeTarget(services, COMPUTE, FakeHandle(0),
                        on_prepare=lambda c: store.request_cancel(c.job_id))
    assert target.run(ctx) == JobStatus.CANCELED
    assert not target.started
    job = services.jobs.get_job(ctx.job_id)
    assert statuses(services, ctx.job_id) == ["Queued", "Preparing", "Canceled"]
    assert job.error == "canceled while preparing"


def test_an_error_in_prepare_fails_the_job_with_its_message(services: FakeServices) -> None:
    ctx = new_run(services)

    def broken(_: RunContext) -> None:
        raise MlwsError("the environment could not be built: no such package")

    target = FakeTarget(services, COMPUTE, FakeHandle(0), on_prepare=broken)
    assert target.run(ctx) == JobStatus.FAILED
    assert not target.started
    job = services.jobs.get_job(ctx.job_id)
    assert job.error == "the environment could not be built: no such package"


def test_an_unexpected_exception_in_prepare_is_reported_not_raised(
        services: FakeServices) -> None:
    ctx = new_run(services)

    def broken(_: RunContext) -> None:
        raise KeyError("python")

    assert FakeTarget(services, COMPUTE, FakeHandle(0), on_prepare=broken).run(ctx) \
        == JobStatus.FAILED
    assert services.jobs.get_job(ctx.job_id).error == "internal error: KeyError: 'python'"
    assert "Traceback" in ctx.paths.job_log.read_text()


def test_metrics_and_params_the_job_writes_are_ingested(services: FakeServices) -> None:
    ctx = new_run(services)

    def write_metrics(n: int) -> None:
        if n == 1:
            ctx.paths.run.mkdir(exist_ok=True)
            lines = [{"key": "loss", "value": 0.5, "step": 1, "t": 1.0},
                     {"key": "loss", "value": 0.25, "step": 2, "t": 2.0}]
            (ctx.paths.run / "metrics.jsonl").write_text(
                "".join(json.dumps(m) + "\n" for m in lines) + '{"key": "half')
            (ctx.paths.run / "params.jsonl").write_text(json.dumps({"key": "lr", "value": 0.1})
                                                        + "\n")

    assert FakeTarget(services, COMPUTE, FakeHandle(0, on_poll=write_metrics)).run(ctx) \
        == JobStatus.COMPLETED
    store: Any = services.jobs
    assert [(m.key, m.value, m.step) for m in store.job_metrics(ctx.job_id)] == [
        ("loss", 0.5, 1), ("loss", 0.25, 2)]
    assert store.job_params(ctx.job_id) == {"lr": 0.1}


def test_a_prestarted_handle_skips_prepare(services: FakeServices) -> None:
    ctx = new_run(services)
    target = FakeTarget(services, COMPUTE, FakeHandle(0),
                        on_prepare=lambda c: pytest.fail("prepared a ready job"))
    final = target.run(ctx, prestarted=FakeHandle(0), runtime=Runtime(python="/ready/python"))
    assert final == JobStatus.COMPLETED
    assert services.jobs.get_job(ctx.job_id).image == "/ready/python"
