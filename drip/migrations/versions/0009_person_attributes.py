"""person attributes (the HR file's other columns) and archived cohorts

Revision ID: 0007_person_attributes
Revises: 0008_inbound
Create Date: 2026-11-30 05:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_person_attributes"
down_revision = "0008_inbound"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("person") as batch:
        batch.add_column(sa.Column("attributes", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("cohort") as batch:
        batch.add_column(
            sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("cohort") as batch:
        batch.drop_column("archived")
    with op.batch_alter_table("person") as batch:
        batch.drop_column("attributes")
