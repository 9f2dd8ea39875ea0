from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict
from sqlalchemy import String
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, new_id, utcnow


class Role(StrEnum):
    admin = "admin"  # sets the mission up
    analyst = "analyst"  # reads everything, reviews, corrects
    observer = "observer"  # posts for own assignments, reads own
    viewer = "viewer"  # findings and exports only (dashboards)


class Credential(SQLModel, table=True):
    """A bearer token scoped to one mission and one role; only its SHA-256 is stored."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id", index=True)
    role: Role = Field(sa_type=String(16))
    observer_id: uuid.UUID | None = Field(default=None, foreign_key="observer.id", index=True)
    label: str = Field(max_length=200)
    token_hash: str = Field(max_length=64, unique=True)
    token_prefix: str = Field(max_length=16, description="First characters, to recognise a token")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by_id: uuid.UUID | None = Field(default=None)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CredentialCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    role: Role
    label: str = Field(min_length=1, max_length=200)
    observer_id: uuid.UUID | None = Field(None, description="Required for the observer role")


class CredentialPublic(SQLModel):
    id: uuid.UUID
    mission_id: uuid.UUID
    role: Role
    observer_id: uuid.UUID | None
    label: str
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CredentialIssued(CredentialPublic):
    token: str = Field(description="The bearer token; shown only now, never again")


class CredentialsPublic(SQLModel):
    data: list[CredentialPublic]
    count: int


class ObserverTokensCreate(SQLModel):
    """Observer tokens in bulk, by the codes of the observer import."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    observers: list[str] = Field(
        min_length=1, max_length=10_000, description='Observer codes, e.g. `["STO-011"]`'
    )
    label: str = Field("phone", min_length=1, max_length=100, description="Each token's label")


class ObserverTokenIssued(CredentialIssued):
    observer_code: str
    observer_name: str
    revoked_previous: int = Field(0, description="Earlier tokens of the observer now revoked")


class ObserverTokensIssued(SQLModel):
    data: list[ObserverTokenIssued]
    count: int
