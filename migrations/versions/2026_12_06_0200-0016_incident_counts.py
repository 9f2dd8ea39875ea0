"""The fold counts incident reports per region, type, source and hour of the day.

The incidents view grouped every incident report of the mission on every compute (0.46 s
at a million checklists, a tenth of them incidents); it now reads `finding_incident`, rows
bounded by the form's options. The counts are by the mission's incident type and source
questions, noted in `finding_state.incident_roles`: none here, so the next fold counts
each mission's applied reports afresh (until then the view groups the reports as before).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "finding_incident",
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("region_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("reports", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "mission_id", "region_id", "kind", "source", "hour", name=op.f("pk_finding_incident")
        ),
    )
    with op.batch_alter_table("finding_state") as batch:
        batch.add_column(sa.Column("incident_roles", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("finding_state") as batch:
        batch.drop_column("incident_roles")
    op.drop_table("finding_incident")
