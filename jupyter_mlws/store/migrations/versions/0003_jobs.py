"""Jobs: records, status history, metrics, parameters and lineage.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _job_fk() -> sa.ForeignKey:
    return sa.ForeignKey("jobs.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(255)),
        sa.Column("experiment", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(64)),
        sa.Column("step_name", sa.String(255)),
        sa.Column("compute", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(330)),
        sa.Column("env_hash", sa.String(64)),
        sa.Column("image", sa.Text),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("runner_pid", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.String(255)),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_parent", "jobs", ["parent_id"])
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.create_index("ix_jobs_experiment", "jobs", ["experiment"])
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(64), _job_fk(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("message", sa.Text),
    )
    op.create_index("ix_job_events_job", "job_events", ["job_id", "id"])
    op.create_table(
        "job_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(64), _job_fk(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_job_metrics_job", "job_metrics", ["job_id", "key", "step"])
    op.create_table(
        "job_params",
        sa.Column("job_id", sa.String(64), _job_fk(), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "job_io",
        sa.Column("job_id", sa.String(64), _job_fk(), primary_key=True),
        sa.Column("direction", sa.String(8), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("uri", sa.Text),
        sa.Column("value", sa.Text),
        sa.Column("asset_kind", sa.String(32)),
        sa.Column("asset_name", sa.String(255)),
        sa.Column("asset_version", sa.String(64)),
    )
    op.create_index("ix_job_io_asset", "job_io", ["asset_kind", "asset_name", "asset_version"])


def downgrade() -> None:
    for table in ("job_io", "job_params", "job_metrics", "job_events", "jobs"):
        op.drop_table(table)
