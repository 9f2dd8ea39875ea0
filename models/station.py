from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import ConfigDict
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, new_id, utcnow

STATION_CODE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class StationBase(SQLModel):
    # SQLModel ignores `regex=`; a pattern in schema_extra reaches pydantic and is enforced.
    code: str = Field(
        max_length=64, schema_extra={"pattern": STATION_CODE}, description="Stable code: 01-001"
    )
    name: str = Field(min_length=1, max_length=300)
    address: str | None = Field(None, max_length=500)
    registered_voters: int | None = Field(None, ge=0, le=10_000_000)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)


class Station(StationBase, table=True):
    __table_args__ = (UniqueConstraint("mission_id", "code"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id")
    location_id: uuid.UUID = Field(foreign_key="location.id", index=True)
    region_id: uuid.UUID = Field(
        foreign_key="location.id",
        index=True,
        description="Top of the location tree (region, or host country abroad)",
    )
    abroad: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StationCreate(StationBase):
    """One station; in-country stations name a region (and district or city), others a country."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    region: str | None = Field(None, max_length=200)
    district: str | None = Field(None, max_length=200)
    city: str | None = Field(None, max_length=200)
    country: str | None = Field(None, max_length=200, description="Out-of-country: host country")
    post: str | None = Field(None, max_length=200, description="Out-of-country: embassy/consulate")


class StationPublic(StationBase):
    id: uuid.UUID
    location_path: str
    abroad: bool


class StationsPublic(SQLModel):
    data: list[StationPublic]
    count: int


class ImportProblem(SQLModel):
    line: int
    reason: str


class ImportReport(SQLModel):
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    problems: list[ImportProblem]
