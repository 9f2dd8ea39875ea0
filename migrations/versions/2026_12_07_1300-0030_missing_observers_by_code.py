"""The fold's rows per observer carry the observer's code; coverage lists them by index.

Coverage lists the observers with a station they have not reported from, fewest reported
first and then by code, 500 at most. It read every observer's row of the mission and
sorted them joined to the observers: 28 ms of a coverage of 160 ms with 15,000 observers,
nearly all of them missing a station at the start of the day. With the code in the row
(an observer's code never changes), an index in the list's order gives its first page.
The codes are copied here from the observers; the fold writes them with each row it
counts from now on. As with 0023, stop the processes of the release before this one: a
fold of theirs would write rows without a code, which the table refuses.

Revision ID: 0030
Revises: 0029
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("finding_observer_plan", sa.Column("code", sa.String(64), nullable=True))
    backfill(op.get_bind())
    # Rows of an observer no longer there (none should be: the fold drops them with the
    # plan change that removes the observer).
    op.execute("DELETE FROM finding_observer_plan WHERE code IS NULL")
    with op.batch_alter_table("finding_observer_plan") as batch:
        batch.alter_column("code", existing_type=sa.String(64), nullable=False)
    op.create_index(
        "ix_finding_observer_plan_missing",
        "finding_observer_plan",
        ["mission_id", "phase", "reported", "code"],
        postgresql_where=sa.text("reported < assigned"),
        sqlite_where=sa.text("reported < assigned"),
    )


def backfill(conn: sa.Connection) -> None:
    """Copy each row's observer's code into it, as the fold now writes it."""
    conn.execute(
        sa.text(
            "UPDATE finding_observer_plan SET code = (SELECT observer.code FROM observer"
            " WHERE observer.id = finding_observer_plan.observer_id)"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_finding_observer_plan_missing", table_name="finding_observer_plan")
    with op.batch_alter_table("finding_observer_plan") as batch:
        batch.drop_column("code")
