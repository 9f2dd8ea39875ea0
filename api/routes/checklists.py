from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from api.body import json_body_doc, parse_json, raw_body, validate
from api.config import Settings
from api.db import session_scope
from api.deps import (
    SUBMITTERS,
    BearerDep,
    CurrentPrincipal,
    SessionDep,
    SettingsDep,
    StaffOfMission,
    check_role,
    in_intake_trip,
    principal_of,
    record_write,
)
from api.errors import COMMON_ERRORS, Conflict, NotFound, TooLarge, error_responses
from api.services import checklists as checklist_service
from models.checklist import (
    ChecklistDetail,
    ChecklistPublic,
    ChecklistsPublic,
    ChecklistSubmit,
    Phase,
)

router = APIRouter(tags=["checklists"])
INTAKE_ERRORS = COMMON_ERRORS | error_responses(Conflict, TooLarge)
NOT_FOUND = error_responses(NotFound)


@router.post(
    "/checklists",
    status_code=status.HTTP_201_CREATED,
    response_model=ChecklistPublic,
    responses=INTAKE_ERRORS
    | {200: {"model": ChecklistPublic, "description": "Already stored with the same content"}},
    openapi_extra=json_body_doc(ChecklistSubmit),
)
async def submit_checklist(
    request: Request,
    response: Response,
    auth: BearerDep,
    settings: SettingsDep,
    raw: Annotated[bytes, Depends(raw_body)],
) -> Any:
    """Store a checklist once: resending the same id and content is safe (200, nothing new)."""
    # The busiest route does all its database work in one worker-thread trip (each trip
    # costs about 0.3 ms of CPU): the token check, the rate limit, the checklist, the audit
    # notes and the commit, in that order, as the dependencies would do them.
    outcome = await in_intake_trip(_submit, request, auth, settings, raw, single=True)
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return outcome.checklist


def _submit(
    request: Request, auth: Any, settings: Settings, raw: bytes
) -> checklist_service.Outcome:
    with session_scope() as session:
        # The checklist is charged to the observer's allowance with the token's lookup.
        principal = principal_of(request, session, settings, auth, checklists=1)
        check_role(principal, *SUBMITTERS)
        item = parse_json(raw)
        body = validate(ChecklistSubmit, item)
        outcome = checklist_service.submit(session, principal, body, item, raw.decode(), settings)
        record_write(request, session, "/checklists", raw)
    return outcome


@router.get(
    "/checklists/{checklist_id}",
    response_model=ChecklistDetail,
    responses=COMMON_ERRORS | NOT_FOUND,
)
def read_checklist(
    checklist_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Any:
    """One version with its answers (observers see only their own)."""
    return checklist_service.get_detail(session, principal, checklist_id)


@router.get(
    "/checklists/{checklist_id}/versions",
    response_model=list[ChecklistPublic],
    responses=COMMON_ERRORS | NOT_FOUND,
)
def checklist_versions(
    checklist_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Any:
    """Every version of the checklist this one belongs to, oldest first."""
    return checklist_service.versions(session, principal, checklist_id)


@router.get(
    "/missions/{mission_id}/checklists", response_model=ChecklistsPublic, responses=COMMON_ERRORS
)
def list_mission_checklists(
    mission_id: uuid.UUID,
    principal: StaffOfMission,
    session: SessionDep,
    station: str | None = None,
    observer_id: uuid.UUID | None = None,
    phase: Phase | None = None,
    latest_only: bool = False,
    held: Annotated[
        bool | None,
        Query(description="true: latest corrections of rejected or quarantined versions to review"),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The mission's checklists in arrival order, a page at a time (staff)."""
    data, next_cursor = checklist_service.list_checklists(
        session,
        principal,
        station=station,
        observer_id=observer_id,
        phase=phase.value if phase else None,
        latest_only=latest_only,
        held=held,
        cursor=cursor,
        limit=limit,
    )
    return ChecklistsPublic(data=data, count=len(data), next_cursor=next_cursor)
