from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from api.deps import Analyst, SessionDep, Staff
from api.errors import COMMON_ERRORS, Conflict, NotFound, error_responses
from api.services import review as review_service
from models.review import ReviewCreate, ReviewPublic, ReviewsPublic

router = APIRouter(prefix="/checklists/{checklist_id}", tags=["review"])


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
