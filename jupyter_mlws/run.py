"""What code inside a job imports: ``from jupyter_mlws import run``.

Standard library only, and no network: metrics and parameters are appended as JSON lines to
files in the job's run folder (``$MLWS_RUN_DIR``), which the workspace reads while the job runs
and when it ends. The same code works on every compute target, and outside a job too (then it
writes under ``./mlws-run/`` so a notebook can be tried interactively).

    from jupyter_mlws import run
    run.log_param("lr", 0.1)
    for epoch in range(3):
        run.log_metric("loss", 1 / (epoch + 1), step=epoch)
    model_dir = run.output_path("model")   # a named output of the job
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

__all__ = [
    "in_job",
    "input_path",
    "job_id",
    "log_metric",
    "log_metrics",
    "log_param",
    "output_path",
    "outputs_dir",
]


def in_job() -> bool:
    """True inside a job run by the workspace."""
    return "MLWS_JOB_ID" in os.environ


def job_id() -> str | None:
    return os.environ.get("MLWS_JOB_ID")


def _run_dir() -> Path:
    d = Path(os.environ.get("MLWS_RUN_DIR") or "mlws-run")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _append(filename: str, record: dict[str, Any]) -> None:
    line = json.dumps(record, separators=(",", ":")) + "\n"
    # one write of a short line with O_APPEND: whole lines even when several processes log
    fd = os.open(_run_dir() / filename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record a numeric metric (optionally at a step, e.g. an epoch)."""
    if not isinstance(key, str) or not key:
        raise ValueError("a metric needs a non-empty string key")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"metric {key!r} must be a finite number, got {value!r}")
    record: dict[str, Any] = {"key": key, "value": number, "t": time.time()}
    if step is not None:
        record["step"] = int(step)
    _append("metrics.jsonl", record)


def log_metrics(values: dict[str, float], step: int | None = None) -> None:
    for key, value in values.items():
        log_metric(key, value, step=step)


def log_param(key: str, value: Any) -> None:
    """Record a parameter (any JSON value; others are stored as their text)."""
    try:
        json.dumps(value)
    except TypeError:
        value = str(value)
    _append("params.jsonl", {"key": str(key), "value": value})


def outputs_dir() -> Path:
    """The folder that holds the job's named outputs (one sub-folder each)."""
    d = Path(os.environ.get("MLWS_OUTPUTS_DIR") or "mlws-run/outputs")
    d.mkdir(parents=True, exist_ok=True)
    return d


def output_path(name: str) -> Path:
    """The folder of the named output ``name`` (created if needed)."""
    env = os.environ.get(f"MLWS_OUTPUT_{name.upper()}")
    p = Path(env) if env else outputs_dir() / name
    p.mkdir(parents=True, exist_ok=True)
    return p


def input_path(name: str) -> str | None:
    """The path or value bound to the input ``name`` (``None`` when not given)."""
    return os.environ.get(f"MLWS_INPUT_{name.upper()}")
