"""the way back: suppression list and the inbound messages processed

Revision ID: 0008_inbound
Revises: 0005_digest_retry
Create Date: 2026-11-30 05:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from drip.models import UTCDateTime

revision = "0008_inbound"
down_revision = "0005_digest_retry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppression",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sqlmodel.AutoString(length=320), nullable=False),
        sa.Column("reason", sqlmodel.AutoString(), nullable=False),
        sa.Column("source", sqlmodel.AutoString(length=20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "inbound_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("source", sqlmodel.AutoString(length=10), nullable=False),
        sa.Column("kind", sqlmodel.AutoString(length=20), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("email", sqlmodel.AutoString(length=320), nullable=False),
        sa.Column("outcome", sqlmodel.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("inbound_message")
    op.drop_table("suppression")
