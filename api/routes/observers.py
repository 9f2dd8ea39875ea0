from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlmodel import col

from api.deps import AdminOfMission, SessionDep, StaffOfMission
from api.errors import COMMON_ERRORS, NotFound, error_responses
from api.services import observers as observer_service
from api.services import signin_qr
from models import Mission, Team
from models.observer import (
    AssignmentsUpdate,
    ObserverCreate,
    ObserverPublic,
    ObserversPublic,
    ObserverUpdate,
    SignInCards,
    TeamCreate,
    TeamPublic,
)
from models.station import ImportReport

router = APIRouter(prefix="/missions/{mission_id}", tags=["observers"])
NOT_FOUND = error_responses(NotFound)


@router.post(
    "/observers",
    status_code=status.HTTP_201_CREATED,
    response_model=ObserverPublic,
    responses=COMMON_ERRORS,
)
def create_observer(
    mission_id: uuid.UUID, body: ObserverCreate, session: SessionDep, _: AdminOfMission
) -> Any:
    """Create (or update, by code) an observer with their team and assigned stations."""
    obs, _changed = observer_service.create_or_update(session, mission_id, body)
    return observer_service.public(session, [obs])[0]


@router.post("/observers/import", response_model=ImportReport, responses=COMMON_ERRORS)
def import_observers(
    mission_id: uuid.UUID,
    session: SessionDep,
    _: AdminOfMission,
    csv_text: Annotated[
        str,
        Body(
            media_type="text/csv", examples=["code,name,team,stations\nO1,Anna,T1,01-001 01-002\n"]
        ),
    ],
    dry_run: bool = False,
) -> Any:
    """Import observers from CSV (code,name,team,phone,language,stations) upserting by code."""
    return observer_service.import_csv(session, mission_id, csv_text, dry_run)


@router.get("/observers", response_model=ObserversPublic, responses=COMMON_ERRORS)
def list_observers(
    mission_id: uuid.UUID,
    session: SessionDep,
    _: StaffOfMission,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,  # beyond BIGINT was a 500
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Observers with their team and assigned stations."""
    data, count = observer_service.list_observers(session, mission_id, offset, limit)
    return ObserversPublic(data=data, count=count)


@router.get(
    "/observers/{observer_id}", response_model=ObserverPublic, responses=COMMON_ERRORS | NOT_FOUND
)
def read_observer(
    mission_id: uuid.UUID, observer_id: uuid.UUID, session: SessionDep, _: StaffOfMission
) -> Any:
    """One observer."""
    return observer_service.public(
        session, [observer_service.get(session, mission_id, observer_id)]
    )[0]


@router.patch(
    "/observers/{observer_id}", response_model=ObserverPublic, responses=COMMON_ERRORS | NOT_FOUND
)
def update_observer(
    mission_id: uuid.UUID,
    observer_id: uuid.UUID,
    body: ObserverUpdate,
    session: SessionDep,
    _: AdminOfMission,
) -> Any:
    """Change an observer's name, phone, language or team."""
    obs = observer_service.update(session, mission_id, observer_id, body)
    return observer_service.public(session, [obs])[0]


@router.put(
    "/observers/{observer_id}/assignments",
    response_model=ObserverPublic,
    responses=COMMON_ERRORS | NOT_FOUND,
)
def set_assignments(
    mission_id: uuid.UUID,
    observer_id: uuid.UUID,
    body: AssignmentsUpdate,
    session: SessionDep,
    _: AdminOfMission,
) -> Any:
    """Replace the observer's assigned stations."""
    obs = observer_service.get(session, mission_id, observer_id)
    observer_service.set_assignments(session, mission_id, observer_id, body.stations)
    return observer_service.public(session, [obs])[0]


@router.post(
    "/teams",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamPublic,
    responses=COMMON_ERRORS,
)
def create_team(
    mission_id: uuid.UUID, body: TeamCreate, session: SessionDep, _: AdminOfMission
) -> Any:
    """Create a team (creating an existing name returns it)."""
    tid = observer_service.team_id(session, mission_id, body.name)
    return session.get(Team, tid)


@router.get("/teams", response_model=list[TeamPublic], responses=COMMON_ERRORS)
def list_teams(mission_id: uuid.UUID, session: SessionDep, _: StaffOfMission) -> Any:
    """The mission's teams."""
    return session.scalars(
        select(Team).where(col(Team.mission_id) == mission_id).order_by(col(Team.name))
    ).all()


@router.post(
    "/signin-cards",
    response_model=None,
    responses=COMMON_ERRORS
    | NOT_FOUND
    | {200: {"description": "A printable page of cards", "content": {"text/html": {}}}},
)
def signin_cards(
    request: Request,
    mission_id: uuid.UUID,
    body: SignInCards,
    session: SessionDep,
    _: AdminOfMission,
) -> HTMLResponse:
    """New observer tokens as a printable page of QR cards (the console's *Sign-in cards*;
    `pollcheck token qr --sheet` on the command line): each code signs a phone in to the
    web app, or with `collect` sets ODK Collect up with the observer's forms. The page holds
    the tokens: print it, hand the cards over, and do not keep it."""
    base = (body.base_url or str(request.base_url)).rstrip("/")
    cards = signin_qr.issue_cards(
        session, mission_id, body.observers, base, body.revoke_previous, body.collect
    )
    mission = session.get(Mission, mission_id)
    if mission is None:
        raise NotFound("no such mission", code="mission_not_found")
    return HTMLResponse(
        signin_qr.sheet(mission, cards),
        headers={"Cache-Control": "no-store", "X-Cards": str(len(cards))},
    )
