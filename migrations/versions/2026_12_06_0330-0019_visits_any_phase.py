"""The fold's visits also count each observer's checklists at a station in any phase.

Coverage's missing teams and observers grouped the visits per phase into one row per
observer and station on every compute; the fold now keeps that row itself (phase `all`),
summed here from the visits per phase (`backfill`).

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    backfill(op.get_bind())


def backfill(bind: sa.Connection) -> None:
    """Each observer and station's visits in any phase, from those per phase."""
    bind.execute(
        sa.text(
            "INSERT INTO finding_visit (observer_id, station_id, phase, mission_id, checklists,"
            " last_received_at) SELECT observer_id, station_id, 'all', mission_id,"
            " sum(checklists), max(last_received_at) FROM finding_visit WHERE phase <> 'all'"
            " GROUP BY observer_id, station_id, mission_id"
        )
    )


def downgrade() -> None:
    op.execute("DELETE FROM finding_visit WHERE phase = 'all'")
