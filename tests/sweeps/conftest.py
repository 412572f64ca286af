"""Sweep tests: a workspace the CLI finds, whose jobs are stopped afterwards."""

from __future__ import annotations

from pathlib import Path

SPECS = Path(__file__).parent.parent / "azure" / "specs"

