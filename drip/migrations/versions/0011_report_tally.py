"""the report's tallies: the event log added up per delivery, enrolment and day

Revision ID: 0011_report_tally
Revises: 0010_catch_up
Create Date: 2026-11-30 09:00:00

The tallies start empty: the first report (or the worker, within a minute) reads the whole
event log into them once.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from drip.models import UTCDateTime

revision = "0011_report_tally"
down_revision = "0010_catch_up"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tally_state",
        sa.Column("name", sqlmodel.AutoString(length=20), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "delivery_tally",
        sa.Column("delivery_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("cohort_id", sa.Integer(), nullable=False),
        sa.Column("slug", sqlmodel.AutoString(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        *(
            sa.Column(name, sa.Boolean(), nullable=False)
            for name in (
                "counted",
                "opened_h",
                "opened_a",
                "confirmed_h",
                "confirmed_a",
                "answered",
                "right",
            )
        ),  # fmt: skip
        sa.Column("last_at_h", UTCDateTime(), nullable=True),
        sa.Column("last_at_a", UTCDateTime(), nullable=True),
        sa.Column("unsubscribed", sa.Boolean(), nullable=False),
        sa.Column("unsubscribed_after", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    op.create_index("ix_delivery_tally_enrollment_id", "delivery_tally", ["enrollment_id"])
    op.create_table(
        "enrollment_tally",
        sa.Column("enrollment_id", sa.Integer(), autoincrement=False, nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "sent",
                "opened_h",
                "opened_a",
                "confirmed_h",
                "confirmed_a",
                "answered",
                "right",
            )
        ),  # fmt: skip
        sa.Column("behind_h", sa.Boolean(), nullable=False),
        sa.Column("behind_a", sa.Boolean(), nullable=False),
        sa.Column("last_at_h", UTCDateTime(), nullable=True),
        sa.Column("last_at_a", UTCDateTime(), nullable=True),
        sa.Column("loose_at", UTCDateTime(), nullable=True),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("enrollment_id"),
    )
    op.create_table(
        "lesson_tally",
        sa.Column("cohort_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("slug", sqlmodel.AutoString(length=200), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "position",
                "sent",
                "opened_h",
                "opened_a",
                "confirmed_h",
                "confirmed_a",
                "answered",
                "right",
                "unsubscribed",
            )
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("cohort_id", "slug"),
    )
    op.create_table(
        "day_tally",
        sa.Column("cohort_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sqlmodel.AutoString(length=10), nullable=False),
        sa.Column("what", sqlmodel.AutoString(length=10), nullable=False),
        sa.Column("count_a", sa.Integer(), nullable=False),
        sa.Column("count_h", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("cohort_id", "day", "what"),
    )


def downgrade() -> None:
    op.drop_table("day_tally")
    op.drop_table("lesson_tally")
    op.drop_table("enrollment_tally")
    op.drop_index("ix_delivery_tally_enrollment_id", table_name="delivery_tally")
    op.drop_table("delivery_tally")
    op.drop_table("tally_state")
