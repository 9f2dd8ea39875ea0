"""The fold counts the checklists that arrived in each hour once the hour is over.

Coverage's arrivals per hour counted every checklist of the mission on every compute (an
index-only scan, but of a million entries at a million checklists); it now reads
`finding_arrival` for the hours before `finding_state.arrivals_through` and counts only
the hours since from the checklists. None here: the next fold counts each mission's
earlier hours (until then the view counts them all, as before).

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "finding_arrival",
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("region_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.String(length=17), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("checklists", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "mission_id", "region_id", "hour", "phase", name=op.f("pk_finding_arrival")
        ),
    )
    with op.batch_alter_table("finding_state") as batch:
        batch.add_column(
            sa.Column("arrivals_through", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("finding_state") as batch:
        batch.drop_column("arrivals_through")
    op.drop_table("finding_arrival")
