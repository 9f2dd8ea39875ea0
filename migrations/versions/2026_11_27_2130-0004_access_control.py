"""Access control: review history, the append-only audit trail and rate-limit counters.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The audit trail is append-only at the database too: any UPDATE or DELETE raises, whoever
# sends it. SQLite gets the UPDATE half only, because the test suite empties its tables with
# DELETE (PostgreSQL's is TRUNCATE, which row triggers do not see and which needs ownership).
PG_APPEND_ONLY = """
CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""
SQLITE_APPEND_ONLY = """
CREATE TRIGGER audit_event_append_only BEFORE UPDATE ON audit_event
BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END
"""


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=True),
        sa.Column("at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True),
        sa.Column("before", models.base.JSONType, nullable=True),
        sa.Column("after", models.base.JSONType, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_mission_id_id", ["mission_id", "id"], unique=False)

    op.create_table(
        "review_event",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("mission_id", sa.Uuid(), nullable=False),
        sa.Column("checklist_id", sa.Uuid(), nullable=False),
        sa.Column("state_before", sa.String(length=16), nullable=False),
        sa.Column("state_after", sa.String(length=16), nullable=False),
        sa.Column("quarantined_before", sa.Boolean(), nullable=False),
        sa.Column("quarantined_after", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checklist_id"], ["checklist.id"], name=op.f("fk_review_event_checklist_id_checklist")
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credential.id"],
            name=op.f("fk_review_event_credential_id_credential"),
        ),
        sa.ForeignKeyConstraint(
            ["mission_id"], ["mission.id"], name=op.f("fk_review_event_mission_id_mission")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_event")),
    )
    with op.batch_alter_table("review_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_event_checklist_id_id", ["checklist_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_review_event_mission_id"), ["mission_id"])

    op.create_table(
        "rate_limit_window",
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("credential_id", "window", name=op.f("pk_rate_limit_window")),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_APPEND_ONLY)
    else:
        op.execute(SQLITE_APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only")
    op.drop_table("rate_limit_window")
    with op.batch_alter_table("review_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_event_mission_id"))
        batch_op.drop_index("ix_review_event_checklist_id_id")
    op.drop_table("review_event")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_mission_id_id")
    op.drop_table("audit_event")
