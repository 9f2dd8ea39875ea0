from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, new_id, utcnow


class Gateway(StrEnum):
    twilio = "twilio"
    rapidpro = "rapidpro"
    generic = "generic"


class SmsGateway(SQLModel, table=True):
    """A gateway a mission takes SMS from, with the secret its requests are checked with
    (Twilio's auth token, or the shared secret of RapidPro and the generic webhook). Never
    shown again once set: mission settings are readable by every member, this is not."""

    __tablename__ = "sms_gateway"

    mission_id: uuid.UUID = Field(foreign_key="mission.id", primary_key=True)
    gateway: str = Field(sa_type=String(16), primary_key=True)
    secret: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SmsGatewaySet(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    secret: str = Field(
        min_length=16,
        max_length=200,
        description="Twilio: the account's auth token; RapidPro and generic: a shared secret",
    )


class SmsGatewayPublic(SQLModel):
    gateway: Gateway
    webhook_path: str = Field(description="Where the gateway posts incoming SMS")
    created_at: datetime


class SmsNumber(SQLModel, table=True):
    """An observer's phone number in E.164, as found from the observer's registered phone,
    with the SMS credential their checklists are stored under; `revoked_at` set: the
    number's messages are logged and nothing else (no checklist, no reply)."""

    __tablename__ = "sms_number"
    __table_args__ = (UniqueConstraint("mission_id", "e164"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id")
    e164: str = Field(max_length=20)
    observer_id: uuid.UUID | None = Field(default=None, foreign_key="observer.id", index=True)
    credential_id: uuid.UUID | None = Field(default=None, foreign_key="credential.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SmsNumberPublic(SQLModel):
    e164: str
    observer_id: uuid.UUID | None
    observer_code: str | None
    revoked_at: datetime | None


class SmsNumberUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    revoked: bool = Field(description="true: ignore this number's SMS from now on")


class Outcome(StrEnum):
    stored = "stored"  # a checklist (or a new version of one) was stored
    pending = "pending"  # answers kept; the checklist still lacks required answers
    invalid = "invalid"  # nothing stored; the reply says what was wrong
    unknown_number = "unknown_number"  # no observer has this number: no reply
    revoked = "revoked"  # the number is revoked: no reply
    rate_limited = "rate_limited"  # too many SMS from this number: no reply
    reply = "reply"  # an outgoing message


class SmsMessage(SQLModel, table=True):
    """Every SMS in and out, with what it became. An incoming one is unique per gateway
    message id in its mission, so a gateway's retry finds it and gets the same reply."""

    __tablename__ = "sms_message"
    __table_args__ = (
        UniqueConstraint("mission_id", "gateway", "message_id"),
        Index("ix_sms_message_mission_id_created_at", "mission_id", "created_at"),
        Index("ix_sms_message_mission_id_phone_created_at", "mission_id", "phone", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id")
    gateway: str = Field(sa_type=String(16))
    direction: str = Field(sa_type=String(3), description="in or out")
    message_id: str | None = Field(default=None, max_length=100)
    phone: str = Field(max_length=40, description="E.164 where it could be read, else as sent")
    observer_id: uuid.UUID | None = Field(default=None, foreign_key="observer.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    outcome: str = Field(sa_type=String(16))
    station: str | None = Field(default=None, max_length=64)
    phase: str | None = Field(default=None, sa_type=String(16))
    answers: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    errors: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONType))
    checklist_id: uuid.UUID | None = Field(default=None, foreign_key="checklist.id")
    reply_to_id: uuid.UUID | None = Field(default=None, foreign_key="sms_message.id")


class SmsMessagePublic(SQLModel):
    id: uuid.UUID
    gateway: str
    direction: str
    message_id: str | None
    phone: str
    observer_id: uuid.UUID | None
    text: str
    created_at: datetime
    outcome: Outcome
    station: str | None
    phase: str | None
    errors: list[dict[str, Any]] | None
    checklist_id: uuid.UUID | None
    reply_to_id: uuid.UUID | None


class SmsMessagesPublic(SQLModel):
    data: list[SmsMessagePublic]
    count: int
    next_cursor: str | None = None
