from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from api.deps import Admin, AdminOfMission, MemberOfMission, SessionDep
from api.errors import COMMON_ERRORS, NotFound, error_responses
from api.services import credentials as credential_service
from api.services import missions as mission_service
from models.credential import (
    CredentialCreate,
    CredentialIssued,
    CredentialPublic,
    CredentialsPublic,
    ObserverTokensCreate,
    ObserverTokensIssued,
)
from models.mission import MissionCreate, MissionCreated, MissionPublic, MissionUpdate

router = APIRouter(prefix="/missions", tags=["missions"])
NOT_FOUND = error_responses(NotFound)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=MissionCreated, responses=COMMON_ERRORS
)
def create_mission(body: MissionCreate, session: SessionDep, principal: Admin) -> Any:
    """Create a mission with the default checklist; returns its first admin token once."""
    mission, admin = mission_service.create(session, body, created_by_id=principal.credential_id)
    return MissionCreated(mission=MissionPublic.model_validate(mission), admin_token=admin.token)


@router.get("/{mission_id}", response_model=MissionPublic, responses=COMMON_ERRORS | NOT_FOUND)
def read_mission(mission_id: uuid.UUID, session: SessionDep, _: MemberOfMission) -> Any:
    """The mission's settings (any role of the mission)."""
    return mission_service.get(session, mission_id)


@router.patch("/{mission_id}", response_model=MissionPublic, responses=COMMON_ERRORS | NOT_FOUND)
def update_mission(
    mission_id: uuid.UUID, body: MissionUpdate, session: SessionDep, _: AdminOfMission
) -> Any:
    """Change the mission's settings (admin)."""
    return mission_service.update(session, mission_id, body)


@router.post(
    "/{mission_id}/credentials",
    status_code=status.HTTP_201_CREATED,
    response_model=CredentialIssued,
    responses=COMMON_ERRORS | NOT_FOUND,
)
def issue_credential(
    mission_id: uuid.UUID, body: CredentialCreate, session: SessionDep, principal: AdminOfMission
) -> Any:
    """Issue a token for a role (observer tokens name the observer); it is shown only once."""
    return credential_service.issue(
        session,
        mission_id,
        body.role,
        body.label,
        body.observer_id,
        created_by_id=principal.credential_id,
    )


@router.post(
    "/{mission_id}/credentials/observers",
    status_code=status.HTTP_201_CREATED,
    response_model=ObserverTokensIssued,
    responses=COMMON_ERRORS | NOT_FOUND,
)
def issue_observer_tokens(
    mission_id: uuid.UUID,
    body: ObserverTokensCreate,
    session: SessionDep,
    principal: AdminOfMission,
) -> Any:
    """Issue a token for each observer code given (all or none); each is shown only once."""
    issued = credential_service.issue_for_observers(
        session, mission_id, body.observers, body.label, created_by_id=principal.credential_id
    )
    return ObserverTokensIssued(data=issued, count=len(issued))


@router.get("/{mission_id}/credentials", response_model=CredentialsPublic, responses=COMMON_ERRORS)
def list_credentials(mission_id: uuid.UUID, session: SessionDep, _: AdminOfMission) -> Any:
    """Every credential of the mission with its last use (never the tokens)."""
    rows = credential_service.list_for_mission(session, mission_id)
    return CredentialsPublic(
        data=[CredentialPublic.model_validate(r) for r in rows], count=len(rows)
    )


@router.post(
    "/{mission_id}/credentials/{credential_id}/revoke",
    response_model=CredentialPublic,
    responses=COMMON_ERRORS | NOT_FOUND,
)
def revoke_credential(
    mission_id: uuid.UUID, credential_id: uuid.UUID, session: SessionDep, _: AdminOfMission
) -> Any:
    """Revoke a token; it stops working on the next request, on every server."""
    return credential_service.revoke(session, mission_id, credential_id)
