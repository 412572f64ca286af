"""Alembic environment: runs on the engine the store hands over (see store/migrate.py)."""

from __future__ import annotations

from alembic import context

from jupyter_mlws.store.rows import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
