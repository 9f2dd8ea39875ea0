"""The counting view's lists come from a row per report the fold keeps.

The view's four lists (reports failing a check, those of stations whose reports disagree,
those the totals use and those they leave out) were read from the reports of the first
stations that filled them (`finding_count_station`), checked again on every compute: 3,600
reports pivoted out of their answers and checked, for 2,000 listed, at a million
checklists, most of the view's 110 to 140 ms. The fold now keeps per counting report
what it is listed for (`finding_count_report`: the checks it fails, whether its station's
reports disagree, whether the totals use it or why not, and its figures), and each
list's first reports come from a partial index of their own. The per-station table goes.
The new table starts empty and the counting figures' key is unset: the next fold counts
each mission's reports again, and until then the view computes from the reports.

Revision ID: 0024
Revises: 0023
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each list's condition on PostgreSQL and SQLite, as `models.finding.COUNT_LISTS` has it
# when this was written.
LISTS = {
    "failing": ("fails <> 0", "fails <> 0"),
    "conflicts": ("conflict", "conflict = 1"),
    "included": ("reason IS NULL", "reason IS NULL"),
    "excluded": ("reason IS NOT NULL", "reason IS NOT NULL"),
}
STATION_LISTS = ("failing", "excluded", "conflict")  # 0022's partial indexes


def upgrade() -> None:
    op.create_table(
        "finding_count_report",
        sa.Column("checklist_id", sa.Uuid(), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("station_id", sa.Uuid(), nullable=False),
        sa.Column("station_code", sa.String(length=64), nullable=False),
        sa.Column("received_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("review_state", sa.String(length=16), nullable=False),
        sa.Column("fails", sa.Integer(), nullable=False),
        sa.Column("conflict", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("figures", models.base.JSONType, nullable=False),
        sa.PrimaryKeyConstraint("checklist_id"),
    )
    op.create_index("ix_finding_count_report_station_id", "finding_count_report", ["station_id"])
    for name, (pg_where, sqlite_where) in LISTS.items():
        op.create_index(
            f"ix_finding_count_report_{name}",
            "finding_count_report",
            ["mission_id", "station_code", "received_at", "checklist_id"],
            postgresql_where=sa.text(pg_where),
            sqlite_where=sa.text(sqlite_where),
        )
    _drop_station_table()
    # Counted again by the next fold, into the new table.
    op.execute("UPDATE finding_state SET counting_key = NULL")


def _drop_station_table() -> None:
    for name in STATION_LISTS:
        op.drop_index(f"ix_finding_count_station_{name}", table_name="finding_count_station")
    op.drop_index("ix_finding_count_station_code", table_name="finding_count_station")
    op.drop_table("finding_count_station")


def downgrade() -> None:
    op.create_table(
        "finding_count_station",
        sa.Column("station_id", sa.Uuid(), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("station_code", sa.String(length=64), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("failing", sa.Integer(), nullable=False),
        sa.Column("excluded", sa.Integer(), nullable=False),
        sa.Column("conflict", sa.Integer(), nullable=False),
        sa.Column("chosen_checklist_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("station_id"),
    )
    op.create_index(
        "ix_finding_count_station_code", "finding_count_station", ["mission_id", "station_code"]
    )
    for name in STATION_LISTS:
        op.create_index(
            f"ix_finding_count_station_{name}",
            "finding_count_station",
            ["mission_id", "station_code"],
            postgresql_where=sa.text(f"{name} > 0"),
            sqlite_where=sa.text(f"{name} > 0"),
        )
    for name in LISTS:
        op.drop_index(f"ix_finding_count_report_{name}", table_name="finding_count_report")
    op.drop_index("ix_finding_count_report_station_id", table_name="finding_count_report")
    op.drop_table("finding_count_report")
    op.execute("UPDATE finding_state SET counting_key = NULL")
