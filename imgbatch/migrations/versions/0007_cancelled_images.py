"""requests count their cancelled images

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("cancelled_images", sa.Integer(), nullable=False, server_default="0")
        )
    # Requests cancelled before this counter existed: count what they hold.
    op.execute(
        "UPDATE requests SET cancelled_images = (SELECT count(*) FROM images"
        " WHERE images.request_id = requests.id AND images.status = 'cancelled')"
    )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("cancelled_images")
