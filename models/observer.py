from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import ConfigDict, model_validator
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, new_id, refuse_nulls, utcnow


class Team(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("mission_id", "name"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id")
    name: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TeamCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    name: str = Field(min_length=1, max_length=100)


class TeamPublic(SQLModel):
    id: uuid.UUID
    name: str


class ObserverBase(SQLModel):
    code: str = Field(max_length=64, min_length=1, description="Mission's own id for the observer")
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=40)
    language: str | None = Field(None, max_length=8, description="Preferred language code")


class Observer(ObserverBase, table=True):
    __table_args__ = (UniqueConstraint("mission_id", "code"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id")
    team_id: uuid.UUID | None = Field(default=None, foreign_key="team.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ObserverCreate(ObserverBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    team: str | None = Field(None, max_length=100, description="Team name; created if new")
    stations: list[str] = Field(default_factory=list, description="Codes of assigned stations")


class ObserverUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=40)
    language: str | None = Field(None, max_length=8)
    team: str | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _no_nulls(self) -> ObserverUpdate:
        refuse_nulls(self, "name")
        return self


class ObserverPublic(ObserverBase):
    id: uuid.UUID
    team: str | None
    stations: list[str]


class ObserversPublic(SQLModel):
    data: list[ObserverPublic]
    count: int


class Assignment(SQLModel, table=True):
    """The deployment plan: which observer is expected at which station."""

    observer_id: uuid.UUID = Field(foreign_key="observer.id", primary_key=True)
    station_id: uuid.UUID = Field(foreign_key="station.id", primary_key=True, index=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id", index=True)


class AssignmentsUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    stations: list[str] = Field(description="The complete list of assigned station codes")


class SignInCards(SQLModel):
    """Which observers get new sign-in cards, and for which client."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    observers: list[str] | None = Field(
        None, max_length=10_000, description="Observer codes; none: every observer"
    )
    collect: bool = Field(False, description="ODK Collect settings codes instead of the web app")
    revoke_previous: bool = Field(
        False, description="The observers' earlier tokens stop working (lost or old cards)"
    )
    base_url: str | None = Field(
        None,
        max_length=300,
        schema_extra={"pattern": r"^https?://[^\s/?#]+(/[^\s?#]*)?$"},
        description="Address phones reach the server at; default: the one this request came to",
    )
