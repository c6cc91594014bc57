"""the sending pass's indexes: a claim reads the due rows in order; two that repeat a unique
constraint go

Revision ID: 0012_send_indexes
Revises: 0011_report_tally
Create Date: 2026-11-30 12:00:00

The claim asked for `status IN ('active', 'completed')` ordered by `next_due_at`: two ranges
of ix_enrollment_status_due, so the database read every due row and sorted them, for each batch
of 200 (7.5 ms a claim with 20,000 due, growing with the number due). A partial index on
`next_due_at` of the receiving rows gives them in order, and a claim reads about a batch. It
replaces ix_enrollment_status_due, which SQLite's planner (without statistics) kept choosing.

ix_delivery_enrollment_id and ix_review_due start with the same column as the unique
constraints uq_delivery_enrollment_lesson and uq_review_enrollment_lesson, which serve the same
reads (a few rows per enrolment); each sent lesson updated them in every flush's commit.
"""

import sqlalchemy as sa
from alembic import op

RECEIVING = "status IN ('active', 'completed')"

revision = "0012_send_indexes"
down_revision = "0011_report_tally"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_enrollment_status_due", table_name="enrollment")
    op.drop_index("ix_delivery_enrollment_id", table_name="delivery")
    op.drop_index("ix_review_due", table_name="review")
    op.create_index(
        "ix_enrollment_receiving_due",
        "enrollment",
        ["next_due_at"],
        sqlite_where=sa.text(RECEIVING),
        postgresql_where=sa.text(RECEIVING),
    )


def downgrade() -> None:
    op.drop_index("ix_enrollment_receiving_due", table_name="enrollment")
    op.create_index("ix_enrollment_status_due", "enrollment", ["status", "next_due_at"])
    op.create_index("ix_delivery_enrollment_id", "delivery", ["enrollment_id"])
    op.create_index("ix_review_due", "review", ["enrollment_id", "retired", "due_on"])
