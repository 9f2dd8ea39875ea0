from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from api.deps import Analyst, SessionDep, Staff, StaffOfMission
from api.errors import COMMON_ERRORS, Conflict, NotFound, error_responses
from api.routes.findings import Language
from api.services import queue as queue_service
from api.services import review as review_service
from models.checklist import Phase
from models.review import (
    QueuePublic,
    QueueReason,
    QueueState,
    ReviewCreate,
    ReviewPublic,
    ReviewsPublic,
)

router = APIRouter(prefix="/checklists/{checklist_id}", tags=["review"])
queue_router = APIRouter(tags=["review"])


@router.post(
    "/review",
    status_code=status.HTTP_201_CREATED,
    response_model=ReviewPublic,
    responses=COMMON_ERRORS | error_responses(NotFound, Conflict),
)
def review_checklist(
    checklist_id: uuid.UUID, body: ReviewCreate, principal: Analyst, session: SessionDep
) -> Any:
    """Set the review state and/or quarantine of a checklist's latest version (analysts)."""
    return review_service.set_review(session, principal, checklist_id, body)


@router.get(
    "/reviews",
    response_model=ReviewsPublic,
    responses=COMMON_ERRORS | error_responses(NotFound),
)
def checklist_reviews(checklist_id: uuid.UUID, principal: Staff, session: SessionDep) -> Any:
    """Every review decision on this checklist and its other versions, oldest first (staff)."""
    data = review_service.history(session, principal, checklist_id)
    return ReviewsPublic(data=data, count=len(data))


@queue_router.get(
    "/missions/{mission_id}/review-queue", response_model=QueuePublic, responses=COMMON_ERRORS
)
def review_queue(
    mission_id: uuid.UUID,
    principal: StaffOfMission,
    session: SessionDep,
    reason: Annotated[
        QueueReason | None, Query(description="Only checklists with this reason")
    ] = None,
    phase: Phase | None = None,
    state: Annotated[
        QueueState, Query(description="open: received or has_issues; any: every state")
    ] = QueueState.open,
    station: Annotated[
        str | None, Query(max_length=64, description="Part of the station's code")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    lang: Language = None,
) -> Any:
    """The latest checklists to review, most urgent first (staff): a critical answer, a
    counting report failing a check, a phone clock that was off, no decision yet, then
    the rest; newest first within each. A page at a time (`next_cursor`)."""
    return queue_service.review_queue(
        session,
        principal,
        reason=reason,
        phase=phase.value if phase else None,
        state=state,
        station=station,
        cursor=cursor,
        limit=limit,
        language=lang,
    )
