"""leases owned by live runners

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runners",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("processes", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("claim", sa.String(length=32), nullable=True))
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("runner_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("runner_id")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("claim")
        batch.drop_column("lease_owner")
    op.drop_table("runners")
