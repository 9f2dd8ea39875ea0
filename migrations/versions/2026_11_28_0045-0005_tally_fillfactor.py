"""Findings tallies leave room on each page, so that the fold's updates stay on their page.

The fold adds deltas to existing tally rows all day. With full pages every update writes
the new row version elsewhere and adds an index entry for it; with 30 % of each page free
PostgreSQL updates in place ("HOT": no index entry), which halved the time of the fold's
largest upsert in `make bench`. SQLite has no such setting.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE finding_tally SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE finding_tally RESET (fillfactor)")
