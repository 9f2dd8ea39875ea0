"""Work allowances: checklists per observer, fresh findings computes per token and requests
with bad tokens per client address, each a GCRA bucket (one time per key) that every API
process shares. Request counters count requests; a batch of 200 checklists is one request,
so counting requests let one observer token store 60,000 checklists in half a minute.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_bucket",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_bucket")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_bucket")
