"""Every answer carries its kind, so the findings fold counts it without the template.

The fold turns each answer into tally rows by its question's kind: closed (one row per
option chosen), number (summed) or other (times and texts, only counted as answered). It
used to look the kind up per answer in `finding_question`, a copy of every template's
question types, which in `make bench` made it probe the answers once per question of the
template instead of once per checklist. The kind now comes with the answer, from the
question's type at intake, and `finding_question` goes.

Existing answers get their kind from their checklist's template: closed unless the
template says the question is an integer (number) or a time or text (other).

Revision ID: 0006
Revises: 0005
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The question types that are not closed; kept here, as they were when this ran.
KINDS = {"integer": "number", "time": "other", "text": "other"}


def upgrade() -> None:
    with op.batch_alter_table("answer") as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="closed")
        )
    backfill(op.get_bind())
    # Intake always names the kind; no default would hide a writer that forgot it.
    with op.batch_alter_table("answer") as batch_op:
        batch_op.alter_column("kind", server_default=None)
    op.drop_table("finding_question")


def backfill(bind: sa.Connection) -> None:
    """Set the kind of every answer whose question is not closed, from its template."""
    templates = bind.execute(sa.text("SELECT id, definition FROM checklist_template")).all()
    update = sa.text(
        "UPDATE answer SET kind = :kind WHERE question_code = :code AND checklist_id IN"
        " (SELECT id FROM checklist WHERE template_id = :tpl)"
    )
    for tpl_id, definition in templates:
        if isinstance(definition, str):
            definition = json.loads(definition)
        for section in definition.get("sections", []):
            for question in section.get("questions", []):
                kind = KINDS.get(question.get("type"))
                if kind is not None:
                    bind.execute(update, {"kind": kind, "code": question["code"], "tpl": tpl_id})


def downgrade() -> None:
    # Left empty: the fold of 0005 fills it in again for a template as its checklists arrive.
    op.create_table(
        "finding_question",
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("question_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("template_id", "question_code", name=op.f("pk_finding_question")),
    )
    with op.batch_alter_table("answer") as batch_op:
        batch_op.drop_column("kind")
