"""the lessons a late joiner skipped to start where the cohort is

Revision ID: 0010_catch_up
Revises: 0007_person_attributes
Create Date: 2026-11-30 08:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_catch_up"
down_revision = "0007_person_attributes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("skipped", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("skipped")
