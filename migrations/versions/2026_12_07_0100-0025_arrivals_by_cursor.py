"""The fold counts each checklist's arrival as its cursor passes it, the hour under way too.

Coverage's arrivals per hour read the fold's counts for the hours that were over and
counted the hours since from the checklists on every compute: at a busy hour of a large
mission, tens of thousands of them (0.9 to 1.2 s of coverage under intake at a million
checklists). The fold now adds each new checklist to `finding_arrival` when its cursor
passes the checklist's outbox row, which it does once, and coverage reads only the counts.
`finding_state.arrivals_through` gives way to `arrivals_counted`; the counts are emptied
here and the next fold counts each mission's arrivals afresh (until then the view counts
them from the checklists).

Revision ID: 0025
Revises: 0024
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM finding_arrival")
    with op.batch_alter_table("finding_state") as batch:
        batch.drop_column("arrivals_through")
        batch.add_column(sa.Column("arrivals_counted", sa.Boolean(), nullable=True))


def downgrade() -> None:
    # The older fold counts every hour that is over afresh while `arrivals_through` is none.
    op.execute("DELETE FROM finding_arrival")
    with op.batch_alter_table("finding_state") as batch:
        batch.drop_column("arrivals_counted")
        batch.add_column(
            sa.Column("arrivals_through", models.base.UTCDateTime(timezone=True), nullable=True)
        )
