"""Review: analysts set a checklist's review state and quarantine, with a comment; every
decision is kept, recorded in the change outbox (findings) and in the audit trail.

Decisions stick: a correction of a rejected or quarantined version comes in on hold (the
intake's rule `hold_for_correction`), out of the findings, and the hold is recorded in the
history as an event of the correction's own. The next analyst decision on it, whatever it
is, takes the hold off; the decision's state and quarantine then say whether it counts.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.deps import Principal
from api.errors import Conflict, NotFound
from api.services import audit, changes
from models import Checklist, ReviewEvent
from models.base import table_of, utcnow
from models.checklist import Hold, ReviewState
from models.review import ReviewCreate, ReviewPublic

CL = table_of(Checklist)
REV = table_of(ReviewEvent)


def record_hold(
    session: Session,
    principal: Principal,
    checklist_id: uuid.UUID,
    replaced_version: int,
    hold: Hold,
    quarantined: bool,
) -> None:
    """Put the hold of a new correction in its review history, as the intake's event."""
    why = "rejected" if hold == Hold.correction_of_rejected else "quarantined"
    session.execute(
        REV.insert().values(
            mission_id=principal.mission_id,
            checklist_id=checklist_id,
            state_before=ReviewState.received.value,
            state_after=ReviewState.received.value,
            quarantined_before=quarantined,
            quarantined_after=quarantined,
            hold_before=None,
            hold_after=hold.value,
            comment=f"correction of version {replaced_version}, which was {why}: "
            "out of the findings until an analyst decides on it",
            credential_id=principal.credential_id,
            created_at=utcnow(),
        )
    )


def _not_found(checklist_id: uuid.UUID) -> NotFound:
    return NotFound(f"no checklist {checklist_id} in your mission", code="checklist_not_found")


def set_review(
    session: Session, principal: Principal, checklist_id: uuid.UUID, body: ReviewCreate
) -> ReviewPublic:
    """Apply one decision to the latest version of a checklist; returns the kept event."""
    # FOR UPDATE: two analysts deciding at once are serialised, so each event's `before`
    # is the state the other one left (SQLite serialises writers anyway).
    row = session.execute(
        select(
            CL.c.mission_id,
            CL.c.version,
            CL.c.is_latest,
            CL.c.review_state,
            CL.c.quarantined,
            CL.c.hold,
        )
        .where(CL.c.id == checklist_id)
        .with_for_update()
    ).first()
    if row is None or row.mission_id != principal.mission_id:
        raise _not_found(checklist_id)
    if not row.is_latest:
        raise Conflict(
            f"checklist {checklist_id} was corrected; review its latest version",
            code="not_latest_version",
        )
    state_before = ReviewState(row.review_state)
    _check_unchanged(checklist_id, body, state_before, bool(row.quarantined))
    state_after = body.state if body.state is not None else state_before
    q_after = body.quarantined if body.quarantined is not None else bool(row.quarantined)
    hold_before = Hold(row.hold) if row.hold else None
    # Any decision is the analyst's look at a held correction: it takes the hold off.
    session.execute(
        update(CL)
        .where(CL.c.id == checklist_id)
        .values(review_state=state_after.value, quarantined=q_after, hold=None)
    )
    now = utcnow()
    event_id = session.execute(
        REV.insert()
        .values(
            mission_id=principal.mission_id,
            checklist_id=checklist_id,
            state_before=state_before.value,
            state_after=state_after.value,
            quarantined_before=bool(row.quarantined),
            quarantined_after=q_after,
            hold_before=hold_before,
            hold_after=None,
            comment=body.comment,
            credential_id=principal.credential_id,
            created_at=now,
        )
        .returning(REV.c.id)
    ).scalar_one()
    changes.record(session, principal.mission_id, [checklist_id], changes.REVIEW)
    audit.note(
        session,
        "review.set",
        f"checklist/{checklist_id}",
        before={
            "review_state": state_before.value,
            "quarantined": bool(row.quarantined),
            **({"hold": hold_before.value} if hold_before else {}),
        },
        after={
            "review_state": state_after.value,
            "quarantined": q_after,
            "comment": body.comment,
        },
    )
    return ReviewPublic(
        id=event_id,
        checklist_id=checklist_id,
        version=row.version,
        state_before=state_before,
        state_after=state_after,
        quarantined_before=bool(row.quarantined),
        quarantined_after=q_after,
        hold_before=hold_before,
        hold_after=None,
        comment=body.comment,
        credential_id=principal.credential_id,
        created_at=now,
    )


def _check_unchanged(
    checklist_id: uuid.UUID, body: ReviewCreate, state: ReviewState, quarantined: bool
) -> None:
    """A decision made on what the analyst saw: refused when another one came in between."""
    state_moved = body.expected_state is not None and body.expected_state != state
    quarantine_moved = (
        body.expected_quarantined is not None and body.expected_quarantined != quarantined
    )
    if state_moved or quarantine_moved:
        held = " and quarantined" if quarantined else ""
        raise Conflict(
            f"checklist {checklist_id} was reviewed meanwhile: it is now {state.value}{held}; "
            "nothing was changed",
            code="review_changed",
            errors=[
                {
                    "path": ["body", "expected_state" if state_moved else "expected_quarantined"],
                    "code": "review_changed",
                    "message": f"now {state.value}" + (", quarantined" if quarantined else ""),
                }
            ],
        )


def history(session: Session, principal: Principal, checklist_id: uuid.UUID) -> list[ReviewPublic]:
    """Every decision on every version of the checklist this one belongs to, oldest first."""
    root = session.scalar(
        select(CL.c.root_id).where(CL.c.id == checklist_id, CL.c.mission_id == principal.mission_id)
    )
    if root is None:
        raise _not_found(checklist_id)
    rows = session.execute(
        select(REV, CL.c.version)
        .join(CL, CL.c.id == REV.c.checklist_id)
        .where(CL.c.root_id == root)
        .order_by(REV.c.id)
    ).all()
    return [ReviewPublic.model_validate(r._mapping) for r in rows]
