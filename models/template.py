from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, new_id, utcnow


class TemplateStatus(StrEnum):
    draft = "draft"
    published = "published"
    retired = "retired"


class ChecklistTemplate(SQLModel, table=True):
    """A versioned checklist form; a published version never changes."""

    __tablename__ = "checklist_template"
    __table_args__ = (UniqueConstraint("mission_id", "code", "version"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    mission_id: uuid.UUID = Field(foreign_key="mission.id", index=True)
    code: str = Field(max_length=32)
    version: int
    status: TemplateStatus = Field(default=TemplateStatus.draft, sa_type=String(16))
    definition: dict[str, Any] = Field(sa_column=Column(JSONType, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TemplateSummary(SQLModel):
    id: uuid.UUID
    code: str
    version: int
    status: TemplateStatus
    title: str
    created_at: datetime
    published_at: datetime | None


class TemplatePublic(TemplateSummary):
    definition: dict[str, Any]


class TemplatesPublic(SQLModel):
    data: list[TemplateSummary]
    count: int
