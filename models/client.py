"""Which client sent a checklist, for checklists from other clients than the web app."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String
from sqlmodel import Field, SQLModel


class ChecklistClient(SQLModel, table=True):
    """The device and the app a checklist version came from (ODK Collect, Enketo…), as the
    OpenRosa channel received them: kept to trace a phone that sends odd data."""

    __tablename__ = "checklist_client"

    checklist_id: uuid.UUID = Field(
        sa_column_args=[ForeignKey("checklist.id", ondelete="CASCADE")], primary_key=True
    )
    channel: str = Field(sa_type=String(16), description="openrosa")
    device_id: str | None = Field(
        default=None, sa_type=String(200), description="The form's deviceID, e.g. collect:AbC…"
    )
    client: str | None = Field(
        default=None, sa_type=String(300), description="The app and version (its User-Agent)"
    )
