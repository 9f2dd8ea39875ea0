"""Files a checklist declares (a photo of the posted protocol…): metadata only.

The bytes live on disk under `POLLCHECK_ATTACHMENTS_DIR`, addressed by their SHA-256 per
mission, never in the database. A row exists from the moment the checklist declaring the
file is stored; `stored_at` is set once the whole file has arrived and its hash checked.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, StringConstraints
from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, new_id, utcnow

# Photos phones take, and a scanned protocol; nothing a browser would run.
AttachmentType = Literal["image/jpeg", "image/png", "image/webp", "image/heic", "application/pdf"]
ATTACHMENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
SHA256_HEX = r"^[0-9a-f]{64}$"


class Attachment(SQLModel, table=True):
    """One file declared by one checklist version, unique by name within that version."""

    __table_args__ = (
        Index("ix_attachment_checklist_id_name", "checklist_id", "name", unique=True),
        Index("ix_attachment_mission_id_sha256", "mission_id", "sha256"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    checklist_id: uuid.UUID = Field(sa_column_args=[ForeignKey("checklist.id", ondelete="CASCADE")])
    mission_id: uuid.UUID = Field(foreign_key="mission.id")
    name: str = Field(max_length=100)
    sha256: str = Field(max_length=64)
    size: int = Field(sa_type=BigInteger)
    content_type: str = Field(sa_type=String(64))
    declared_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    stored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AttachmentDeclared(SQLModel):
    """A file the checklist comes with, uploaded separately by name."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    name: Annotated[str, StringConstraints(pattern=ATTACHMENT_NAME)] = Field(
        description="File name, unique in the checklist, e.g. protocol.jpg"
    )
    sha256: Annotated[str, StringConstraints(pattern=SHA256_HEX)] = Field(
        description="SHA-256 of the file, lowercase hex"
    )
    size: int = Field(ge=1, description="Bytes; the server's limit is in its settings")
    content_type: AttachmentType


class AttachmentStatus(SQLModel):
    name: str
    sha256: str
    size: int
    content_type: str
    received: int = Field(description="Bytes the server holds so far")
    complete: bool


class AttachmentsStatus(SQLModel):
    checklist_id: uuid.UUID
    data: list[AttachmentStatus]
    missing: list[str] = Field(description="Names of the files still to upload")
