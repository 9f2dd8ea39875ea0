"""The change outbox says what each change was: a checklist version stored, a version
replaced by its correction, or a review decision.

The live event stream (`GET /missions/{id}/events`) tells open consoles about new checklists
and review decisions in the outbox's order, and replays what a reconnecting console missed
from it; the findings only need to know that a checklist changed, the console needs to know
how. Rows written before have no kind: the stream leaves them out (they are long past any
replay), the findings read them as before.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("checklist_change") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checklist_change") as batch:
        batch.drop_column("kind")
