"""outbox: events waiting to leave drip for an LRS (xAPI) or a webhook

Revision ID: 0005_outbox
Revises: 0005
Create Date: 2026-11-30 05:40:00
"""

import sqlalchemy as sa
from alembic import op

from drip.models import UTCDateTime

revision = "0005_outbox"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=10), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["event.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("target", "event_id", name="uq_outbox_target_event"),
    )
    op.create_index("ix_outbox_due", "outbox", ["target", "status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
