"""The asset registry: versions, per-name counters, tags, secrets, workspace metadata.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "asset_names",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("next_version", sa.Integer, nullable=False),
        sa.Column("next_seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "asset_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False),
        sa.Column("curated", sa.Boolean, nullable=False),
        sa.Column("env_hash", sa.String(64)),
        sa.Column("job_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.String(255)),
        sa.UniqueConstraint("kind", "name", "version", name="uq_asset_version"),
    )
    op.create_index(
        "ix_asset_versions_latest", "asset_versions", ["kind", "name", "archived", "seq"]
    )
    op.create_index("ix_asset_versions_env_hash", "asset_versions", ["env_hash"])
    op.create_index("ix_asset_versions_kind_seen", "asset_versions", ["kind", "hidden", "archived"])
    op.create_table(
        "asset_tags",
        sa.Column(
            "asset_id",
            sa.Integer,
            sa.ForeignKey("asset_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_asset_tags_kv", "asset_tags", ["key", "value"])
    op.create_table(
        "asset_secrets",
        sa.Column(
            "asset_id",
            sa.Integer,
            sa.ForeignKey("asset_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("secret", sa.Text, nullable=False),
    )
    op.create_table(
        "workspace_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("workspace_meta", "asset_secrets", "asset_tags", "asset_versions", "asset_names"):
        op.drop_table(table)
