"""The planner is told how many answers a checklist has.

PostgreSQL estimates the distinct checklists among the answers from a sample of 30,000
rows, and at a million checklists it guessed 116,000 of them: 273 answers a checklist
rather than 29 to 89. The fold joins a batch's stations' earlier checklists to their
answers; with that guess, once a batch touched a few tens of thousands of earlier
checklists the planner read all 32 million answers instead of looking each checklist's
up (a fold of 5,000 at a million: 9.6 to 10.9 s against 7.3 to 9.2 s). The column's
`n_distinct` is set to one checklist per 50 answers, which holds within a factor of two
for the default template's 36 to 89 answers a checklist and the bench's 29, and the
answers are analysed again so that it takes effect (PostgreSQL only; SQLite has no such
statistic).

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANSWERS_PER_CHECKLIST = 50


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    ratio = -1 / ANSWERS_PER_CHECKLIST  # negative: a share of the rows, whatever their number
    op.execute(f"ALTER TABLE answer ALTER COLUMN checklist_id SET (n_distinct = {ratio})")
    op.execute("ANALYZE answer (checklist_id)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE answer ALTER COLUMN checklist_id RESET (n_distinct)")
    op.execute("ANALYZE answer (checklist_id)")
