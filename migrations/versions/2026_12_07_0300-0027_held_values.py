"""The fold keeps, per station and phase, how many counting checklists hold each value.

Whether a batch's checklists make a station start or stop counting for a value depended
on the station's earlier checklists of the phase, which every fold read again, answer by
answer: at a million checklists (fifty a station), 760,000 answers and most of a fold's
second. The fold now keeps those counts in one row per station and phase
(`finding_held`) once it has ten checklists. The rows are not filled here: a station and
phase without one is read from its checklists, as before, and kept from the first fold
that touches it at ten or more.

Revision ID: 0027
Revises: 0026
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "finding_held",
        sa.Column("station_id", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("held", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "phase", name="pk_finding_held"),
        postgresql_with={"fillfactor": 70},
    )


def downgrade() -> None:
    op.drop_table("finding_held")
