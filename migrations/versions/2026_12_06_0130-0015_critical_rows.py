"""Critical answers carry their checklist's station, phase and time of observation; the
applied rows are indexed by time within a phase.

The critical view grouped and listed the critical answers through a join to
`finding_applied`, four times per compute (1.4 s at a million checklists); it now reads
`finding_critical` alone, and its newest answers from an index, unless a filter needs what
only the applied rows hold (team, time window, template). The incidents view lists the
newest reports from the applied rows' index by mission, phase and time. The columns are
filled in from the applied rows (`backfill`); the fold writes them from then on.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COPIED = (
    ("station_id", sa.Uuid()),
    ("phase", sa.String(length=16)),
    ("observed_at", models.base.UTCDateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("finding_critical") as batch:
        for name, type_ in COPIED:
            batch.add_column(sa.Column(name, type_, nullable=True))
    backfill(op.get_bind())
    with op.batch_alter_table("finding_critical") as batch:
        for name, type_ in COPIED:
            batch.alter_column(name, existing_type=type_, nullable=False)
        batch.create_index(
            "ix_finding_critical_mission_id_observed_at", ["mission_id", "observed_at"]
        )
    with op.batch_alter_table("finding_applied") as batch:
        batch.drop_index("ix_finding_applied_mission_id_phase")
        batch.create_index(
            "ix_finding_applied_mission_id_phase_observed_at",
            ["mission_id", "phase", "observed_at"],
        )


def backfill(bind: sa.Connection) -> None:
    """Copy each critical answer's station, phase and time from its applied row (every
    critical answer belongs to an applied checklist: the fold keeps both)."""
    critical = sa.table(
        "finding_critical", sa.column("checklist_id"), *[sa.column(n) for n, _ in COPIED]
    )
    applied = sa.table(
        "finding_applied", sa.column("checklist_id"), *[sa.column(n) for n, _ in COPIED]
    )
    bind.execute(
        sa.update(critical)
        .where(critical.c.checklist_id == applied.c.checklist_id)
        .values(**{name: applied.c[name] for name, _ in COPIED})
    )


def downgrade() -> None:
    with op.batch_alter_table("finding_applied") as batch:
        batch.drop_index("ix_finding_applied_mission_id_phase_observed_at")
        batch.create_index("ix_finding_applied_mission_id_phase", ["mission_id", "phase"])
    with op.batch_alter_table("finding_critical") as batch:
        batch.drop_index("ix_finding_critical_mission_id_observed_at")
        for name, _ in reversed(COPIED):
            batch.drop_column(name)
