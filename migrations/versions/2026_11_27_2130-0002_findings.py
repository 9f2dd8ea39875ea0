"""findings: folded tallies, their cursor, critical answers and a shared result cache.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "finding_applied",
        sa.Column("checklist_id", sa.Uuid(), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("station_id", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("checklist_id", name=op.f("pk_finding_applied")),
    )
    with op.batch_alter_table("finding_applied", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_finding_applied_mission_id"), ["mission_id"], unique=False
        )
        batch_op.create_index("ix_finding_applied_station_id", ["station_id"], unique=False)

    op.create_table(
        "finding_cache",
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("mission_id", "key", name=op.f("pk_finding_cache")),
    )
    op.create_table(
        "finding_critical",
        sa.Column("checklist_id", sa.Uuid(), nullable=False),
        sa.Column("question_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "checklist_id", "question_code", "position", name=op.f("pk_finding_critical")
        ),
    )
    with op.batch_alter_table("finding_critical", schema=None) as batch_op:
        batch_op.create_index(
            "ix_finding_critical_mission_id_question_code",
            ["mission_id", "question_code"],
            unique=False,
        )

    op.create_table(
        "finding_fold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_change_id", sa.BigInteger(), nullable=False),
        sa.Column("seen_change_id", sa.BigInteger(), nullable=False),
        sa.Column("gap_xmax", sa.BigInteger(), nullable=True),
        sa.Column("gap_hi", sa.BigInteger(), nullable=True),
        sa.Column("folded_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding_fold")),
    )
    op.create_table(
        "finding_question",
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("question_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("template_id", "question_code", name=op.f("pk_finding_question")),
    )
    op.create_table(
        "finding_state",
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("folded_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mission_id", name=op.f("pk_finding_state")),
    )
    op.create_table(
        "finding_tally",
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("question_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("observations", sa.BigInteger(), nullable=False),
        sa.Column("stations", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("critical", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "mission_id",
            "node_id",
            "phase",
            "question_code",
            "value",
            name=op.f("pk_finding_tally"),
        ),
    )


def downgrade() -> None:
    op.drop_table("finding_tally")
    op.drop_table("finding_state")
    op.drop_table("finding_question")
    op.drop_table("finding_fold")
    with op.batch_alter_table("finding_critical", schema=None) as batch_op:
        batch_op.drop_index("ix_finding_critical_mission_id_question_code")
    op.drop_table("finding_critical")
    op.drop_table("finding_cache")
    with op.batch_alter_table("finding_applied", schema=None) as batch_op:
        batch_op.drop_index("ix_finding_applied_station_id")
        batch_op.drop_index(batch_op.f("ix_finding_applied_mission_id"))
    op.drop_table("finding_applied")
