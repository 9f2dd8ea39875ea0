"""The counting checklists the fold applied carry what the dashboard views read, and the
fold counts each observer's visits.

Coverage, critical answers, incidents and counting read `finding_applied` (narrow rows:
observer, template, times, review state, and in `answers` a closing checklist's numbers
or an incident report's first answers, by question code) instead of the checklists, whose
payloads make them ten times as wide; the counting view no longer pivots the answers of
every closing checklist on every compute.
`finding_visit` counts, per observer, station and phase, the counting checklists filed
there, for coverage's missing teams and observers. The rows already applied are filled in
from their checklists and the visits counted from them (`backfill`); the fold keeps both
current from then on. On PostgreSQL the index of checklists by arrival also holds their
phase, version and station, so that coverage's arrivals per hour read only the index.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COPIED = (
    ("observer_id", sa.Uuid()),
    ("template_id", sa.Uuid()),
    ("observed_at", models.base.UTCDateTime(timezone=True)),
    ("observed_utc_offset_min", sa.SmallInteger()),
    ("received_at", models.base.UTCDateTime(timezone=True)),
    ("review_state", sa.String(length=16)),
)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "finding_visit",
        sa.Column("observer_id", sa.Uuid(), nullable=False),
        sa.Column("station_id", sa.Uuid(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("checklists", sa.Integer(), nullable=False),
        sa.Column("last_received_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "observer_id", "station_id", "phase", name=op.f("pk_finding_visit")
        ),
    )
    with op.batch_alter_table("finding_visit") as batch:
        batch.create_index(batch.f("ix_finding_visit_mission_id"), ["mission_id"])
    with op.batch_alter_table("finding_applied") as batch:
        for name, type_ in COPIED:
            batch.add_column(sa.Column(name, type_, nullable=True))
        batch.add_column(sa.Column("answers", JSON, nullable=True))
    backfill(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        _arrivals_index(["phase", "version", "station_id"])
    with op.batch_alter_table("finding_applied") as batch:
        for name, type_ in COPIED:
            batch.alter_column(name, existing_type=type_, nullable=False)
        batch.drop_index("ix_finding_applied_mission_id")
        batch.create_index("ix_finding_applied_mission_id_phase", ["mission_id", "phase"])
        batch.create_index(
            "ix_finding_applied_observer_id_station_id", ["observer_id", "station_id"]
        )


def _arrivals_index(include: list[str]) -> None:
    op.drop_index("ix_checklist_mission_id_received_at", table_name="checklist")
    op.create_index(
        "ix_checklist_mission_id_received_at",
        "checklist",
        ["mission_id", "received_at"],
        postgresql_include=include,
    )


def backfill(bind: sa.Connection) -> None:
    """Fill every applied row in from its checklist, and `answers` from its answers (what
    the fold writes for a checklist it applies); then count the visits from them."""
    applied = sa.table(
        "finding_applied",
        sa.column("checklist_id"),
        sa.column("phase"),
        sa.column("answers"),
        *[sa.column(name) for name, _ in COPIED],
    )
    checklist = sa.table("checklist", sa.column("id"), *[sa.column(name) for name, _ in COPIED])
    answer = sa.table(
        "answer",
        sa.column("checklist_id"),
        sa.column("question_code"),
        sa.column("position"),
        sa.column("value"),
        sa.column("number"),
    )
    pg = bind.dialect.name == "postgresql"
    by_code = sa.func.jsonb_object_agg if pg else sa.func.json_group_object

    def of(value: Any, which: Any) -> Any:
        return (
            sa.select(sa.case((sa.func.count() > 0, by_code(answer.c.question_code, value))))
            .where(answer.c.checklist_id == applied.c.checklist_id, which)
            .scalar_subquery()
        )

    bind.execute(
        sa.update(applied)
        .where(applied.c.checklist_id == checklist.c.id)
        .values(
            **{name: checklist.c[name] for name, _ in COPIED},
            answers=sa.case(
                (applied.c.phase == "closing", of(answer.c.number, answer.c.number.is_not(None))),
                (applied.c.phase == "incident", of(answer.c.value, answer.c.position == 0)),
            ),
        )
    )
    bind.execute(
        sa.text(
            "INSERT INTO finding_visit (observer_id, station_id, phase, mission_id, checklists,"
            " last_received_at) SELECT observer_id, station_id, phase, mission_id, count(*),"
            " max(received_at) FROM finding_applied"
            " GROUP BY observer_id, station_id, phase, mission_id"
        )
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _arrivals_index([])
    with op.batch_alter_table("finding_visit") as batch:
        batch.drop_index(batch.f("ix_finding_visit_mission_id"))
    op.drop_table("finding_visit")
    with op.batch_alter_table("finding_applied") as batch:
        batch.drop_index("ix_finding_applied_observer_id_station_id")
        batch.drop_index("ix_finding_applied_mission_id_phase")
        batch.create_index("ix_finding_applied_mission_id", ["mission_id"])
        batch.drop_column("answers")
        for name, _ in reversed(COPIED):
            batch.drop_column(name)
