"""per-key secrets, idempotency and limits

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_secrets",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_index("ix_idempotency_keys_request", "idempotency_keys", ["request_id"])
    op.create_table(
        "upload_windows",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "window_start"),
    )
    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels"),
    )
    op.create_index("ix_images_output_key", "images", ["output_key"])


def downgrade() -> None:
    op.drop_index("ix_images_output_key", table_name="images")
    op.drop_table("metric_counters")
    op.drop_table("upload_windows")
    op.drop_index("ix_idempotency_keys_request", table_name="idempotency_keys")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("tenant_secrets")
