"""``update`` checks a new description as registration does: bounded, without NUL (a NUL was
stored on SQLite and was an untyped driver error on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.assets.base import DESCRIPTION_MAX
from jupyter_mlws.errors import ValidationError


@pytest.mark.parametrize("description", ["a\x00b", "x" * (DESCRIPTION_MAX + 1)],
                         ids=["nul", "too-long"])
def test_update_refuses_a_description_registration_refuses(
        ws: Workspace, files: Path, description: str) -> None:
    ws.models.create("m", files / "model.pkl", description="first")
    with pytest.raises(ValidationError, match="description"):
        ws.models.update("m", "1", description=description)
    assert ws.models.get("m", "1").description == "first"


def test_update_keeps_accepting_a_plain_description(ws: Workspace, files: Path) -> None:
    ws.models.create("m", files / "model.pkl")
    assert ws.models.update("m", "1", description="better").description == "better"
