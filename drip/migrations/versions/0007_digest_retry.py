"""digest retry: the weekly digest claimed and recorded like a lesson's delivery

Revision ID: 0005_digest_retry
Revises: 0005_outbox
Create Date: 2026-11-30 05:50:00
"""

import sqlalchemy as sa
from alembic import op

import drip.models

revision = "0005_digest_retry"
down_revision = "0005_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before this migration were claims of digests that were sent (or lost).
    with op.batch_alter_table("digest_log") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=20), nullable=False, server_default="sent")
        )
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("message_id", sa.String(length=255), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("claimed_until", drip.models.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", drip.models.UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("last_error", sa.String(length=1000), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("digest_log") as batch:
        for name in ("last_error", "next_attempt_at", "claimed_until", "message_id", "attempts"):
            batch.drop_column(name)
        batch.drop_column("status")
