"""A correction of a rejected or quarantined checklist waits for an analyst.

An observer's correction used to come in as `received` and latest, so it undid an
analyst's rejection in the findings. A correction of a rejected or quarantined version (or
of one that is itself still waiting) is now stored with a `hold`, which keeps it out of
the findings until an analyst decides on it; the review history records the hold being put
on and taken off (`hold_before`, `hold_after`).

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("checklist") as batch:
        batch.add_column(sa.Column("hold", sa.String(length=32), nullable=True))
    with op.batch_alter_table("review_event") as batch:
        batch.add_column(sa.Column("hold_before", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("hold_after", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_event") as batch:
        batch.drop_column("hold_after")
        batch.drop_column("hold_before")
    with op.batch_alter_table("checklist") as batch:
        batch.drop_column("hold")
