"""Find the versions a job produced without scanning every asset.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_asset_versions_job", "asset_versions", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_asset_versions_job", table_name="asset_versions")
