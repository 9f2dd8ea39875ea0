from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, new_id, utcnow


class LocationKind(StrEnum):
    region = "region"
    district = "district"
    city = "city"
    country = "country"  # out-of-country voting: the host country
    post = "post"  # embassy or consulate


class Location(SQLModel, table=True):
    """A node of the mission's location tree; `path` is 'Region/District' for prefix filters."""

    __table_args__ = (UniqueConstraint("mission_id", "path"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id", index=True)
    parent_id: uuid.UUID | None = Field(default=None, foreign_key="location.id")
    kind: LocationKind = Field(sa_type=String(16))
    name: str = Field(max_length=200)
    path: str = Field(max_length=500)
    abroad: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LocationPublic(SQLModel):
    id: uuid.UUID
    parent_id: uuid.UUID | None
    kind: LocationKind
    name: str
    path: str
    abroad: bool
