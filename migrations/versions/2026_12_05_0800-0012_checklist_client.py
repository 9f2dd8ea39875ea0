"""Checklists from ODK Collect and Enketo keep the device and the app they came from.

A table of its own rather than columns on `checklist`: only the OpenRosa channel fills it,
and the intake's hot row stays as it is.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checklist_client",
        sa.Column("checklist_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.String(length=200), nullable=True),
        sa.Column("client", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["checklist_id"],
            ["checklist.id"],
            name=op.f("fk_checklist_client_checklist_id_checklist"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("checklist_id", name=op.f("pk_checklist_client")),
    )


def downgrade() -> None:
    op.drop_table("checklist_client")
