from __future__ import annotations

import uuid
import zoneinfo
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from babel import Locale, UnknownLocaleError
from pydantic import ConfigDict, field_validator, model_validator
from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, new_id, refuse_nulls, utcnow
from models.checklist import PLAUSIBLE_FROM, PLAUSIBLE_TO


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


def bcp47_languages(v: list[str]) -> list[str]:
    """Languages as BCP 47 tags that CLDR knows (through Babel): `en`, `ru-RU`, `sr-Latn`.
    A mission accepted `!!!` as a language and every label lookup then missed."""
    for tag in some_language(v):
        try:
            Locale.parse(tag, sep="-")
        except (ValueError, UnknownLocaleError) as exc:
            raise ValueError(
                f"{tag!r} is not a language tag (BCP 47, such as 'en', 'kk' or 'ru-RU')"
            ) from exc
    if len(set(v)) != len(v):
        raise ValueError("a language is named twice")
    return v


def plausible_election_date(v: date) -> date:
    """An election date in the same plausible years as the phones' clocks (2000 to 2099):
    year 277 was accepted, and the dates the findings work out from it were nonsense."""
    if not PLAUSIBLE_FROM.date() <= v < PLAUSIBLE_TO.date():
        raise ValueError(
            f"an election date from {PLAUSIBLE_FROM.year} to {PLAUSIBLE_TO.year - 1}, not {v}"
        )
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

    # On what comes in only: a mission stored before these checks still reads.
    _date_in = field_validator("election_date")(
        classmethod(lambda cls, v: plausible_election_date(v))
    )
    _langs_in = field_validator("languages")(classmethod(lambda cls, v: bcp47_languages(v)))


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
        classmethod(lambda cls, v: v if v is None else bcp47_languages(v))
    )
    _date = field_validator("election_date")(
        classmethod(lambda cls, v: v if v is None else plausible_election_date(v))
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
