"""The audit trail: one append-only row per write, with who, when and what changed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, utcnow


class AuditEvent(SQLModel, table=True):
    """A write that succeeded. Never updated or deleted (PostgreSQL refuses it by trigger)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_mission_id_id", "mission_id", "id"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    mission_id: uuid.UUID | None = Field(default=None, description="The actor's mission")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    credential_id: uuid.UUID | None = Field(default=None, description="None for the CLI")
    role: str = Field(sa_type=String(16))
    action: str = Field(max_length=200, description="e.g. `review.set` or `POST /missions`")
    target: str | None = Field(default=None, max_length=400)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))


class AuditEventPublic(SQLModel):
    id: int
    at: datetime
    credential_id: uuid.UUID | None
    role: str
    action: str
    target: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditEventsPublic(SQLModel):
    data: list[AuditEventPublic]
    count: int
    next_cursor: int | None = Field(None, description="Pass as `after_id` for the next page")
