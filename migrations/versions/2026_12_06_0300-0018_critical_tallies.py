"""The tallies keep the critical view's own counts.

The critical view counted the critical answers (checklists and distinct stations, per
problem and overall) on every compute, a scan of every critical answer of the mission; it
now reads them from `finding_tally` (phase `all` rows per critical answer, question `!`),
which the fold keeps like every other tally, and only lists the newest answers. For the
tallies folded before, `finding_state.critical_counted` is none here: the next fold
counts those rows from `finding_critical` (until then the view counts as before). The
fold looks up a station's earlier critical answers by the new index.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("finding_state") as batch:
        batch.add_column(sa.Column("critical_counted", sa.Boolean(), nullable=True))
    with op.batch_alter_table("finding_critical") as batch:
        batch.create_index("ix_finding_critical_station_id", ["station_id"])


def downgrade() -> None:
    with op.batch_alter_table("finding_critical") as batch:
        batch.drop_index("ix_finding_critical_station_id")
    with op.batch_alter_table("finding_state") as batch:
        batch.drop_column("critical_counted")
    op.execute(
        "DELETE FROM finding_tally WHERE question_code = '!'"
        " OR (phase = 'all' AND question_code <> '_')"
    )
