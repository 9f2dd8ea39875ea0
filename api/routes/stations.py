from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from api.deps import AdminOfMission, SessionDep, StaffOfMission
from api.errors import COMMON_ERRORS, NotFound, error_responses
from api.services import stations as station_service
from models import Location
from models.location import LocationPublic
from models.station import ImportReport, StationCreate, StationPublic, StationsPublic

router = APIRouter(prefix="/missions/{mission_id}", tags=["stations"])
NOT_FOUND = error_responses(NotFound)
CSV_EXAMPLE = (
    "code,name,region,district,city,country,post,address,registered_voters\n"
    "01-001,School No. 1,Astana,Almaty district,,,,1 Abai Ave,1520\n"
    "X-001,Embassy in Ankara,,,,Turkey,Embassy in Ankara,,310\n"
)


@router.post("/stations/import", response_model=ImportReport, responses=COMMON_ERRORS)
def import_stations(
    mission_id: uuid.UUID,
    session: SessionDep,
    _: AdminOfMission,
    csv_text: Annotated[
        str,
        Body(media_type="text/csv", examples=[CSV_EXAMPLE], description="CSV with a header row"),
    ],
    dry_run: Annotated[bool, Query(description="Check every row and write nothing")] = False,
) -> Any:
    """Import stations from CSV, upserting by code; any bad row stops the whole import."""
    return station_service.import_csv(session, mission_id, csv_text, dry_run)


@router.put("/stations", response_model=StationPublic, responses=COMMON_ERRORS)
def put_station(
    mission_id: uuid.UUID, body: StationCreate, session: SessionDep, _: AdminOfMission
) -> Any:
    """Create or update one station by its code."""
    return station_service.put_station(session, mission_id, body)


@router.get("/stations", response_model=StationsPublic, responses=COMMON_ERRORS)
def list_stations(
    mission_id: uuid.UUID,
    session: SessionDep,
    _: StaffOfMission,
    location: Annotated[str | None, Query(description="Path prefix, e.g. 'Astana'")] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,  # beyond BIGINT was a 500
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Stations of the mission, optionally under one place of the location tree."""
    data, count = station_service.list_stations(session, mission_id, location, offset, limit)
    return StationsPublic(data=data, count=count)


@router.get("/stations/{code}", response_model=StationPublic, responses=COMMON_ERRORS | NOT_FOUND)
def read_station(mission_id: uuid.UUID, code: str, session: SessionDep, _: StaffOfMission) -> Any:
    """One station by its code."""
    return station_service.get_station(session, mission_id, code)


@router.get("/locations", response_model=list[LocationPublic], responses=COMMON_ERRORS)
def list_locations(mission_id: uuid.UUID, session: SessionDep, _: StaffOfMission) -> Any:
    """The location tree as a flat list ordered by path."""
    from sqlalchemy import select
    from sqlmodel import col

    return session.scalars(
        select(Location).where(col(Location.mission_id) == mission_id).order_by(col(Location.path))
    ).all()
