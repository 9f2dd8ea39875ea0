from __future__ import annotations

import uuid
import zoneinfo
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, field_validator, model_validator
from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, new_id, refuse_nulls, utcnow


class Sampling(StrEnum):
    purposive = "purposive"
    random = "random"


def known_zone(v: str) -> str:
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {v!r}") from exc
    return v


def some_language(v: list[str]) -> list[str]:
    if not v or any(not (2 <= len(x) <= 8) for x in v):
        raise ValueError("give at least one language code such as 'en'")
    return v


class MissionBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(min_length=1, max_length=100, description="Host country of the election")
    election_date: date
    timezone: str = Field(max_length=64, description="IANA time zone, e.g. Asia/Almaty")
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        sa_column=Column(JSONType, nullable=False),
        description="Language codes; the first is the mission's default",
    )
    sampling: Sampling = Field(
        default=Sampling.purposive,
        sa_type=String(16),
        description="purposive (findings describe what was observed) or random (intervals allowed)",
    )

    _zone = field_validator("timezone")(classmethod(lambda cls, v: known_zone(v)))
    _langs = field_validator("languages")(classmethod(lambda cls, v: some_language(v)))


class Mission(MissionBase, table=True):
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    settings: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONType, nullable=False),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MissionCreate(MissionBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    settings: dict[str, Any] = Field(default_factory=dict)


class MissionUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    name: str | None = Field(None, min_length=1, max_length=200)
    country: str | None = Field(None, min_length=1, max_length=100)
    election_date: date | None = None
    timezone: str | None = None
    languages: list[str] | None = None
    sampling: Sampling | None = None
    settings: dict[str, Any] | None = None

    # `v and ...` let "" and [] through unchecked, and an empty language list then broke
    # every later read of the mission; only a missing value skips the check.
    _zone = field_validator("timezone")(
        classmethod(lambda cls, v: v if v is None else known_zone(v))
    )
    _langs = field_validator("languages")(
        classmethod(lambda cls, v: v if v is None else some_language(v))
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> MissionUpdate:
        refuse_nulls(self, *type(self).model_fields)
        return self


class MissionPublic(MissionBase):
    id: uuid.UUID
    settings: dict[str, Any]
    created_at: datetime


class MissionCreated(SQLModel):
    mission: MissionPublic
    admin_token: str = Field(description="Admin credential for the new mission; shown only once")
