"""Indexes for the review queue's lists that are few among many.

The review queue lists the latest checklists most urgent first: those with a critical
answer, then counting reports failing a check, then phones whose clock was off, then the
undecided ones, then the rest (`api.services.queue`). The console used to rank them in
the browser after fetching every latest checklist. The server now reads each list's
first rows newest first; the rare ones need an index each, or the database would read
the whole mission to find them: the critical answers (a few in a hundred), the flagged
clocks, and the checklists an analyst has decided on. None of them takes an entry for a
new checklist with a good clock and no critical answer. Building them reads the answers
and the checklists once.

Revision ID: 0028
Revises: 0027
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_answer_critical",
        "answer",
        ["checklist_id"],
        postgresql_where=sa.text("critical"),
        sqlite_where=sa.text("critical = 1"),
    )
    op.create_index(
        "ix_checklist_clock",
        "checklist",
        ["mission_id", "received_at"],
        postgresql_where=sa.text("is_latest AND clock_flagged"),
        sqlite_where=sa.text("is_latest = 1 AND clock_flagged = 1"),
    )
    op.create_index(
        "ix_checklist_decided",
        "checklist",
        ["mission_id", "received_at"],
        postgresql_where=sa.text("is_latest AND review_state <> 'received'"),
        sqlite_where=sa.text("is_latest = 1 AND review_state <> 'received'"),
    )


def downgrade() -> None:
    op.drop_index("ix_checklist_decided", table_name="checklist")
    op.drop_index("ix_checklist_clock", table_name="checklist")
    op.drop_index("ix_answer_critical", table_name="answer")
