"""Endpoint and deployment records in the store (migration 0005), on the workspace's SQLite."""

from __future__ import annotations

import pytest

from jupyter_mlws import Workspace
from jupyter_mlws.errors import ConflictError, NotFoundError


def test_endpoint_records_round_trip_and_deployments_go_with_their_endpoint(
        ws: Workspace) -> None:
    store = ws.store
    keys = {"format": "fernet-v1", "key_id": "x", "token": "t"}
    ep = store.create_endpoint("ep-one", spec={"name": "ep-one"}, port=40001,  # type: ignore[attr-defined]
                               keys=keys, traffic={})
    assert ep.port == 40001 and ep.keys == keys and ep.created_at is not None
    with pytest.raises(ConflictError, match="already exists"):
        store.create_endpoint("ep-one", spec={}, port=1, keys=keys, traffic={})  # type: ignore[attr-defined]
    first = store.put_deployment("ep-one", "blue", spec={"a": 1}, resolved={"python": "p"})  # type: ignore[attr-defined]
    again = store.put_deployment("ep-one", "blue", spec={"a": 2}, resolved={"python": "q"})  # type: ignore[attr-defined]
    assert (first.generation, again.generation) == (1, 2)
    assert store.get_deployment("ep-one", "blue").resolved == {"python": "q"}  # type: ignore[attr-defined]
    store.update_endpoint("ep-one", traffic={"blue": 100}, port=40002)  # type: ignore[attr-defined]
    got = store.get_endpoint("ep-one")  # type: ignore[attr-defined]
    assert got.traffic == {"blue": 100} and got.port == 40002
    assert [e.name for e in store.list_endpoints()] == ["ep-one"]  # type: ignore[attr-defined]
    store.delete_endpoint("ep-one")  # type: ignore[attr-defined]
    assert store.list_endpoints() == []  # type: ignore[attr-defined]
    assert store.list_deployments("ep-one") == []  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError, match="online-endpoint list"):
        store.get_endpoint("ep-one")  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError, match="No online endpoint"):
        store.put_deployment("ep-one", "blue", spec={}, resolved={})  # type: ignore[attr-defined]


def test_a_workspace_made_before_endpoints_is_migrated_on_open(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from sqlalchemy import inspect

    from jupyter_mlws.store.migrate import alembic_config

    ws = Workspace.init(tmp_path / "old")
    command.downgrade(alembic_config(ws.store.write_engine), "0004")  # type: ignore[attr-defined]
    assert "online_endpoints" not in inspect(ws.store.engine).get_table_names()  # type: ignore[attr-defined]
    ws.close()
    with Workspace.open(tmp_path / "old") as again:
        assert again.endpoints.list() == []
        assert {"online_endpoints", "online_deployments"} <= set(
            inspect(again.store.engine).get_table_names())  # type: ignore[attr-defined]
