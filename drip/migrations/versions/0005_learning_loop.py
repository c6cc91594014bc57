"""learning loop: spaced review, welcome, per-person send time, delivery kinds

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:35:00
"""

import sqlalchemy as sa
from alembic import op

from drip.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cohort") as batch:
        batch.add_column(
            sa.Column("welcome", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("sponsor", sa.String(300), nullable=False, server_default=""))
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("send_time", sa.String(5), nullable=False, server_default=""))
        batch.add_column(sa.Column("send_days", sa.String(40), nullable=False, server_default=""))
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="lesson"))
        batch.add_column(sa.Column("review_slug", sa.String(200), nullable=True))
        batch.add_column(sa.Column("review_hash", sa.String(64), nullable=True))
    with op.batch_alter_table("lesson_version") as batch:
        batch.add_column(sa.Column("review", sa.String(), nullable=False, server_default=""))
    op.create_table(
        "review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("lesson_slug", sa.String(200), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("first_right", sa.Boolean(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["enrollment_id"], ["enrollment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enrollment_id", "lesson_slug", name="uq_review_enrollment_lesson"),
    )
    op.create_index("ix_review_due", "review", ["enrollment_id", "retired", "due_on"])


def downgrade() -> None:
    op.drop_index("ix_review_due", table_name="review")
    op.drop_table("review")
    with op.batch_alter_table("lesson_version") as batch:
        batch.drop_column("review")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("review_hash")
        batch.drop_column("review_slug")
        batch.drop_column("kind")
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("send_days")
        batch.drop_column("send_time")
    with op.batch_alter_table("cohort") as batch:
        batch.drop_column("sponsor")
        batch.drop_column("welcome")
