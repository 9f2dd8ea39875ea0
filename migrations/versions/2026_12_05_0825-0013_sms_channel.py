"""SMS checklists: the gateways a mission takes SMS from (with their secrets), observers'
numbers in E.164 (revocable), and the log of every SMS in and out with what it became.

The log is unique per (mission, gateway, gateway's message id), so a gateway's retry is
found and answered with the same reply instead of being handled twice.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_gateway",
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("secret", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mission_id"], ["mission.id"], name=op.f("fk_sms_gateway_mission_id_mission")
        ),
        sa.PrimaryKeyConstraint("mission_id", "gateway", name=op.f("pk_sms_gateway")),
    )
    op.create_table(
        "sms_number",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("e164", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("observer_id", sa.Uuid(), nullable=True),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credential.id"],
            name=op.f("fk_sms_number_credential_id_credential"),
        ),
        sa.ForeignKeyConstraint(
            ["mission_id"], ["mission.id"], name=op.f("fk_sms_number_mission_id_mission")
        ),
        sa.ForeignKeyConstraint(
            ["observer_id"], ["observer.id"], name=op.f("fk_sms_number_observer_id_observer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_number")),
        sa.UniqueConstraint("mission_id", "e164", name=op.f("uq_sms_number_mission_id_e164")),
    )
    with op.batch_alter_table("sms_number", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sms_number_observer_id"), ["observer_id"], unique=False
        )

    op.create_table(
        "sms_message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("observer_id", sa.Uuid(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("station", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("phase", sa.String(length=16), nullable=True),
        sa.Column(
            "answers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("checklist_id", sa.Uuid(), nullable=True),
        sa.Column("reply_to_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["checklist_id"], ["checklist.id"], name=op.f("fk_sms_message_checklist_id_checklist")
        ),
        sa.ForeignKeyConstraint(
            ["mission_id"], ["mission.id"], name=op.f("fk_sms_message_mission_id_mission")
        ),
        sa.ForeignKeyConstraint(
            ["observer_id"], ["observer.id"], name=op.f("fk_sms_message_observer_id_observer")
        ),
        sa.ForeignKeyConstraint(
            ["reply_to_id"], ["sms_message.id"], name=op.f("fk_sms_message_reply_to_id_sms_message")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_message")),
        sa.UniqueConstraint(
            "mission_id",
            "gateway",
            "message_id",
            name=op.f("uq_sms_message_mission_id_gateway_message_id"),
        ),
    )
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sms_message_mission_id_created_at", ["mission_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_sms_message_mission_id_phone_created_at",
            ["mission_id", "phone", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_message_mission_id_phone_created_at")
        batch_op.drop_index("ix_sms_message_mission_id_created_at")

    op.drop_table("sms_message")
    with op.batch_alter_table("sms_number", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_number_observer_id"))

    op.drop_table("sms_number")
    op.drop_table("sms_gateway")
