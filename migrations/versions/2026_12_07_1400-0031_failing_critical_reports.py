"""A counting report carries its checklist's critical mark; the queue lists those by index.

The review queue's counting reason lists first the failing counting reports whose
checklist has a critical answer. It read the failing reports newest first and looked up
each one's checklist for the mark, so a mission where no failing report is critical had
all of them looked at: 8,283 at a million checklists on the bench machine, 41 to 72 ms of
a page. The fold now copies the checklist's mark (`checklist.critical`, which never
changes for a version) into the report's row, and a partial index lists the failing and
critical ones newest first. The marks of the stored reports are copied here. As with
0023, stop the processes of the release before this one: a fold of theirs would write
reports unmarked, and the queue would list those after the critical ones.

Revision ID: 0031
Revises: 0030
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "finding_count_report",
        sa.Column("critical", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    backfill(op.get_bind())
    op.create_index(
        "ix_finding_count_report_failing_critical",
        "finding_count_report",
        ["mission_id", "received_at", "checklist_id"],
        postgresql_where=sa.text("fails <> 0 AND critical"),
        sqlite_where=sa.text("fails <> 0 AND critical = 1"),
    )


def backfill(conn: sa.Connection) -> None:
    """Mark the stored reports whose checklist has a critical answer, as the fold does."""
    conn.execute(
        sa.text(
            "UPDATE finding_count_report SET critical = true WHERE checklist_id IN"
            " (SELECT id FROM checklist WHERE critical)"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_finding_count_report_failing_critical", table_name="finding_count_report")
    with op.batch_alter_table("finding_count_report") as batch:
        batch.drop_column("critical")
