"""what each URL returned, for re-runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "url_cache",
        sa.Column("url_sha256", sa.String(length=64), nullable=False),
        sa.Column("options_key", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.String(length=64), nullable=True),
        sa.Column("fresh_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("input_bytes", sa.Integer(), nullable=False),
        sa.Column("output_key", sa.Text(), nullable=False),
        sa.Column("output_bytes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("url_sha256", "options_key"),
    )
    op.create_table(
        "input_outputs",
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("options_key", sa.String(length=64), nullable=False),
        sa.Column("output_key", sa.Text(), nullable=False),
        sa.Column("output_bytes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("input_sha256", "options_key"),
    )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("reused_images", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("images") as batch:
        batch.add_column(
            sa.Column("reused", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("reused")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("reused_images")
    op.drop_table("input_outputs")
    op.drop_table("url_cache")
