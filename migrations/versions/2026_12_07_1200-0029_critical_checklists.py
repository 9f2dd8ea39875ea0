"""A checklist says whether it has a critical answer; the review queue reads them by index.

The review queue lists the checklists with a critical answer first (`api.services.queue`).
It found them through an index of the critical answers, but newest first and under a
filter it had to walk the mission's checklists and look each one up: at a million
checklists, a page of the closing phase's (none of them critical) took 0.66 s, and the
failing counting reports 1.0 s, checking each of them for a critical answer. A critical
answer never changes for a version, so intake now marks its checklist (`critical`), and
two partial indexes list the latest critical checklists of a mission and of one phase,
newest first. They take an entry for a critical checklist only, as the index of critical
answers did, which they replace. The failing counting reports get an index newest first
of their own (`finding_count_report`, kept by the fold).

Filling the column reads the critical answers once, through their index, before it goes.

Revision ID: 0029
Revises: 0028
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LATEST_CRITICAL = {
    "postgresql_where": sa.text("is_latest AND critical"),
    "sqlite_where": sa.text("is_latest = 1 AND critical = 1"),
}


def upgrade() -> None:
    op.add_column(
        "checklist",
        sa.Column("critical", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    backfill(op.get_bind())
    op.drop_index("ix_answer_critical", table_name="answer")
    op.create_index(
        "ix_checklist_critical", "checklist", ["mission_id", "received_at"], **LATEST_CRITICAL
    )
    op.create_index(
        "ix_checklist_critical_phase",
        "checklist",
        ["mission_id", "phase", "received_at"],
        **LATEST_CRITICAL,
    )
    op.create_index(
        "ix_finding_count_report_failing_newest",
        "finding_count_report",
        ["mission_id", "received_at", "checklist_id"],
        postgresql_where=sa.text("fails <> 0"),
        sqlite_where=sa.text("fails <> 0"),
    )


def backfill(conn: sa.Connection) -> None:
    """Mark the stored checklists with a critical answer, as intake marks new ones."""
    conn.execute(
        sa.text(
            "UPDATE checklist SET critical = true WHERE id IN"
            " (SELECT checklist_id FROM answer WHERE critical)"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_finding_count_report_failing_newest", table_name="finding_count_report")
    op.drop_index("ix_checklist_critical_phase", table_name="checklist")
    op.drop_index("ix_checklist_critical", table_name="checklist")
    op.create_index(
        "ix_answer_critical",
        "answer",
        ["checklist_id"],
        postgresql_where=sa.text("critical"),
        sqlite_where=sa.text("critical = 1"),
    )
    with op.batch_alter_table("checklist") as batch:
        batch.drop_column("critical")
