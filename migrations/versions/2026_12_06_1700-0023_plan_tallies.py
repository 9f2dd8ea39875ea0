"""The fold keeps coverage's missing teams and observers per team and observer.

Coverage joined every assignment to the fold's visits on each compute, twice (teams and
observers): 100 to 190 ms of its 170 to 210 ms at a million checklists, growing with the
deployment plan. The fold now keeps per observer and per team, in each phase and in any
phase, the stations assigned and those reported from (`finding_observer_plan`,
`finding_team_plan`), moved by the visits each batch changes. A change of the plan
queues the observers and teams it touches (`finding_plan_change`) and the next fold
counts their rows again. The tables start empty and `finding_state.plan_counted` unset:
the first fold counts each mission, and until then coverage computes as before.

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "finding_observer_plan",
        sa.Column("observer_id", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("reported", sa.Integer(), nullable=False),
        sa.Column("last_received_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("observer_id", "phase"),
    )
    op.create_index(
        "ix_finding_observer_plan_mission_id_phase",
        "finding_observer_plan",
        ["mission_id", "phase"],
    )
    op.create_table(
        "finding_team_plan",
        sa.Column("team_key", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("reported", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("team_key", "phase"),
    )
    op.create_index(
        "ix_finding_team_plan_mission_id_phase", "finding_team_plan", ["mission_id", "phase"]
    )
    op.create_table(
        "finding_plan_change",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("observer_id", sa.Uuid(), nullable=True),
        sa.Column("team_key", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_finding_plan_change_mission_id", "finding_plan_change", ["mission_id"])
    with op.batch_alter_table("finding_state") as batch:
        batch.add_column(sa.Column("plan_counted", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("finding_state") as batch:
        batch.drop_column("plan_counted")
    op.drop_index("ix_finding_plan_change_mission_id", table_name="finding_plan_change")
    op.drop_table("finding_plan_change")
    op.drop_index("ix_finding_team_plan_mission_id_phase", table_name="finding_team_plan")
    op.drop_table("finding_team_plan")
    op.drop_index("ix_finding_observer_plan_mission_id_phase", table_name="finding_observer_plan")
    op.drop_table("finding_observer_plan")
