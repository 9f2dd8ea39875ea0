"""The fold keeps, per region, the stations and those with an assigned observer.

Coverage's table counted them from every station and assignment of the mission on each
compute: 70 ms of a coverage of 120 ms at 100,000 stations, and a second under intake.
They change only with the plan, so the fold counts them again for the mission after
each change of it (`finding_plan_change`, which station imports now queue too). Counted
here for every mission, as the plan stands.

Revision ID: 0026
Revises: 0025
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "finding_region_plan",
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("region_id", sa.Uuid(), nullable=False),
        sa.Column("stations", sa.Integer(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("mission_id", "region_id"),
    )
    op.execute(
        "INSERT INTO finding_region_plan (mission_id, region_id, stations, assigned)"
        " SELECT s.mission_id, s.region_id, count(*), sum(CASE WHEN EXISTS"
        " (SELECT 1 FROM assignment a WHERE a.station_id = s.id) THEN 1 ELSE 0 END)"
        " FROM station s GROUP BY s.mission_id, s.region_id"
    )


def downgrade() -> None:
    op.drop_table("finding_region_plan")
