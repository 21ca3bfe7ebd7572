"""requests resumable by the command line

``imgbatch run`` records what it was started on (the SHA-256 of the input file's bytes and
the output options' key), so running the same command again finds the unfinished request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("resume_key", sa.String(length=128), nullable=True))
        batch.create_index("ix_requests_resume_key", ["resume_key"])


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_resume_key")
        batch.drop_column("resume_key")
