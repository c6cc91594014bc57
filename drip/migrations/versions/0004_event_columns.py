"""event columns: an answer's option and correctness and a click's link, moved out of JSON

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 05:30:00
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("option", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("correct", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("link", sa.Integer(), nullable=True))
    conn = op.get_bind()
    event = sa.table(
        "event",
        sa.column("id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("detail", sa.String),
        sa.column("reason", sa.String),
        sa.column("option", sa.Integer),
        sa.column("correct", sa.Boolean),
        sa.column("link", sa.Integer),
    )
    rows = conn.execute(
        sa.select(event.c.id, event.c.kind, event.c.detail).where(
            event.c.kind.in_(["answer", "click"]), event.c.detail != ""
        )
    ).all()
    updates = []
    for event_id, kind, detail in rows:
        try:
            data = json.loads(detail)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if kind == "answer":
            option = data.get("option")
            updates.append(
                {
                    "eid": event_id,
                    "option": option if isinstance(option, int) else None,
                    "correct": data.get("correct") is True,
                    "link": None,
                }
            )
        else:
            link = data.get("link")
            updates.append(
                {
                    "eid": event_id,
                    "option": None,
                    "correct": None,
                    "link": link if isinstance(link, int) else None,
                }
            )
    if updates:
        conn.execute(
            event.update()
            .where(event.c.id == sa.bindparam("eid"))
            .values(
                option=sa.bindparam("option"),
                correct=sa.bindparam("correct"),
                link=sa.bindparam("link"),
                detail="",
            ),
            updates,
        )

    # Enrolments and completions before this migration wrote no event: add them, so replaying
    # any enrolment's events gives its status.
    conn.execute(
        sa.text(
            "INSERT INTO event (enrollment_id, kind, at, method, verdict, reason, detail) "
            "SELECT id, 'enrol', created_at, 'migration', 'unknown', 'enrolled before 0004', '' "
            "FROM enrollment"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO event (enrollment_id, kind, at, method, verdict, reason, detail) "
            "SELECT e.id, 'complete', COALESCE(MAX(d.sent_at), e.created_at), 'migration', "
            "'unknown', 'completed before 0004', '' FROM enrollment e "
            "LEFT JOIN delivery d ON d.enrollment_id = e.id "
            "WHERE e.status = 'completed' GROUP BY e.id, e.created_at"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.drop_column("link")
        batch.drop_column("correct")
        batch.drop_column("option")
