from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlmodel import col

from api.deps import AnyMember, Observer, SessionDep
from api.errors import COMMON_ERRORS
from api.services import checklists as checklist_service
from models import Assignment, Location, Mission, Station
from models import Observer as ObserverRow
from models.checklist import ChecklistsPublic
from models.credential import Role
from models.mission import MissionPublic
from models.station import StationPublic

router = APIRouter(prefix="/me", tags=["me"])


class Me(BaseModel):
    credential_id: uuid.UUID
    role: Role
    mission: MissionPublic
    observer_id: uuid.UUID | None
    observer_name: str | None


@router.get("", response_model=Me, responses=COMMON_ERRORS)
def whoami(principal: AnyMember, session: SessionDep) -> Any:
    """Who this token is: role, mission and (for observers) the observer."""
    mission = session.get(Mission, principal.mission_id)
    obs = session.get(ObserverRow, principal.observer_id) if principal.observer_id else None
    return Me(
        credential_id=principal.credential_id,
        role=principal.role,
        mission=MissionPublic.model_validate(mission),
        observer_id=principal.observer_id,
        observer_name=obs.name if obs else None,
    )


@router.get("/assignments", response_model=list[StationPublic], responses=COMMON_ERRORS)
def my_assignments(principal: Observer, session: SessionDep) -> Any:
    """The stations assigned to this observer."""
    rows = session.execute(
        select(Station, col(Location.path))
        .join(Assignment, col(Assignment.station_id) == col(Station.id))
        .join(Location, col(Location.id) == col(Station.location_id))
        .where(col(Assignment.observer_id) == principal.observer_id)
        .order_by(col(Station.code))
    ).all()
    return [StationPublic(**s.model_dump(), location_path=p) for s, p in rows]


@router.get("/checklists", response_model=ChecklistsPublic, responses=COMMON_ERRORS)
def my_checklists(
    principal: Observer,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """This observer's checklists (every version) in arrival order, a page at a time."""
    data, next_cursor = checklist_service.list_checklists(
        session, principal, cursor=cursor, limit=limit
    )
    return ChecklistsPublic(data=data, count=len(data), next_cursor=next_cursor)
