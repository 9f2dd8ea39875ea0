"""Checklists as stored: one version with its answers, a version chain, pages of them; and
`submit`, the intake (`api.services.intake`) for callers that speak the API's errors.

Intake itself (the rules, the writers, the entry point every channel calls) lives in
`api.services.intake`; this module only reads.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from api.config import Settings
from api.deps import Principal
from api.errors import AppError, Conflict, Invalid, NotFound
from api.services.intake import Outcome, Refusal, Refused, intake
from api.services.intake.storage import CL, ST, public, public_query
from models import Role
from models.checklist import ChecklistDetail, ChecklistPublic, ChecklistSubmit

__all__ = ["Outcome", "submit"]


def submit(
    session: Session,
    principal: Principal,
    body: ChecklistSubmit,
    item: Any,
    raw: str,
    settings: Settings,
    savepoint: bool = False,
) -> Outcome:
    """Store one checklist exactly once (`intake`), or raise the API's error with every
    problem found: 422 `invalid_checklist` or 409."""
    try:
        return intake(session, principal, body, item, raw, settings, savepoint=savepoint)
    except Refused as exc:
        raise refusal_error(exc.refusal) from exc


def refusal_error(refusal: Refusal) -> AppError:
    """The API's error for an intake refusal."""
    if refusal.kind == "conflict":
        return Conflict(refusal.message, code=refusal.code)
    return Invalid(refusal.message, code=refusal.code, errors=list(refusal.problems))


def _visible(principal: Principal) -> Any:
    if principal.role == Role.viewer:
        return false()  # dashboards get findings and exports, never a single checklist
    cond = CL.c.mission_id == principal.mission_id
    if principal.role == Role.observer:
        cond = and_(cond, CL.c.observer_id == principal.observer_id)
    return cond


def get_detail(session: Session, principal: Principal, checklist_id: uuid.UUID) -> ChecklistDetail:
    row = session.execute(
        public_query().add_columns(CL.c.payload).where(CL.c.id == checklist_id, _visible(principal))
    ).first()
    if row is None:
        raise NotFound(f"no checklist {checklist_id} that you may read", code="checklist_not_found")
    answers = orjson.loads(row.payload).get("answers", {})
    return ChecklistDetail(**public(row).model_dump(), answers=answers)


def versions(
    session: Session, principal: Principal, checklist_id: uuid.UUID
) -> list[ChecklistPublic]:
    root = session.scalar(select(CL.c.root_id).where(CL.c.id == checklist_id, _visible(principal)))
    if root is None:
        raise NotFound(f"no checklist {checklist_id} that you may read", code="checklist_not_found")
    rows = session.execute(public_query().where(CL.c.root_id == root).order_by(CL.c.version))
    return [public(r) for r in rows]


def encode_cursor(received_at: datetime, checklist_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{received_at.isoformat()}|{checklist_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, cid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), uuid.UUID(cid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_cursor() from exc


def bad_cursor() -> Invalid:
    return Invalid(
        "the cursor is not one this server gave out",
        code="bad_cursor",
        errors=[
            {
                "path": ["query", "cursor"],
                "code": "bad_cursor",
                "message": "use next_cursor from the previous page",
            }
        ],
    )


def list_checklists(
    session: Session,
    principal: Principal,
    *,
    station: str | None = None,
    observer_id: uuid.UUID | None = None,
    phase: str | None = None,
    latest_only: bool = False,
    held: bool | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[ChecklistPublic], str | None]:
    """A page in the order the server received them (oldest first), for lists and sync."""
    q = public_query().where(_visible(principal))
    if station:
        q = q.where(ST.c.code == station)
    if observer_id:
        q = q.where(CL.c.observer_id == observer_id)
    if phase:
        q = q.where(CL.c.phase == phase)
    if latest_only:
        q = q.where(CL.c.is_latest)  # plain: see `scope.counts`
    if held is not None:
        # The review queue: the latest versions still waiting (an older version keeps the
        # hold it had when it was corrected, as history).
        q = q.where(and_(CL.c.hold.is_not(None), CL.c.is_latest) if held else CL.c.hold.is_(None))
    if cursor:
        at, cid = decode_cursor(cursor)
        q = q.where(or_(CL.c.received_at > at, and_(CL.c.received_at == at, CL.c.id > cid)))
    rows = session.execute(q.order_by(CL.c.received_at, CL.c.id).limit(limit + 1)).all()
    page = [public(r) for r in rows[:limit]]
    next_cursor = encode_cursor(page[-1].received_at, page[-1].id) if len(rows) > limit else None
    return page, next_cursor
