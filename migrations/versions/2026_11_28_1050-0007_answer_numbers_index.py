"""A partial index of the answers that hold a number, for the counting findings.

The counting view pivots the protocol figures of every counting checklist; without an
index on the question code PostgreSQL read all the answers of the mission (about four
million at 100,000 checklists) for each of its queries, and the view took 3.5 s. Only
answers with a number are indexed (about one in sixteen: the protocol figures, counts and
times), so the index stays small (9 MB beside 250 MB of answers) and a voting checklist
adds about one entry to it. Building it takes a few seconds per 100,000 checklists.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_answer_numbers",
        "answer",
        ["question_code", "checklist_id", "number"],
        postgresql_where=sa.text("number IS NOT NULL"),
        sqlite_where=sa.text("number IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_answer_numbers", table_name="answer")
