"""The fold's visits are indexed by mission and phase.

Coverage reads one phase of a mission's visits (`all` without a phase filter): by an index
on both rather than by mission alone, and then by filtering out the other phases.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("finding_visit") as batch:
        batch.drop_index("ix_finding_visit_mission_id")
        batch.create_index("ix_finding_visit_mission_id_phase", ["mission_id", "phase"])


def downgrade() -> None:
    with op.batch_alter_table("finding_visit") as batch:
        batch.drop_index("ix_finding_visit_mission_id_phase")
        batch.create_index("ix_finding_visit_mission_id", ["mission_id"])
