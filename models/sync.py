"""What phones exchange with the server: the day's work, batch results, reconcile pages.

Small on purpose (2G networks, cheap phones): labels come in one language, defaults and
empty values are left out, and every list has a fixed order so the same data always makes
the same bytes (and the same ETag).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import ConfigDict
from sqlmodel import Field, SQLModel


class DayMission(SQLModel):
    id: uuid.UUID
    name: str
    country: str
    election_date: date
    timezone: str
    languages: list[str]


class DayObserver(SQLModel):
    id: uuid.UUID
    code: str
    name: str
    language: str | None = None


class DayStation(SQLModel):
    code: str
    name: str
    location: str
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class DayOfWork(SQLModel):
    """Everything an observer's phone needs for the day, in one language."""

    language: str = Field(description="Language of every label below")
    mission: DayMission
    observer: DayObserver
    stations: list[DayStation] = Field(description="Assigned stations, by code")
    templates: list[dict[str, Any]] = Field(
        description="Newest published version of each template, labels in `language` only; "
        "keys at their default (required false, allow_na false, no critical answers, "
        "max_length 2000, every phase) are left out"
    )


class ItemError(SQLModel):
    path: list[str | int]
    code: str
    message: str


SyncStatus = Literal["created", "duplicate", "conflict", "invalid"]


class SyncItemResult(SQLModel):
    index: int = Field(description="Position of the item in the batch")
    id: str | None = Field(None, description="The item's id as sent (absent if it had none)")
    status: SyncStatus = Field(
        description="created (stored now), duplicate (already stored: safe to forget), "
        "conflict (id reused or version already corrected), invalid (see errors; nothing stored)"
    )
    version: int | None = None
    received_at: datetime | None = None
    clock_flagged: bool | None = Field(None, description="The phone's clock is far off")
    missing_attachments: list[str] | None = Field(None, description="Files still to upload")
    code: str | None = None
    detail: str | None = None
    errors: list[ItemError] | None = Field(
        None, description="Every problem, with its path inside the item"
    )


class SyncResult(SQLModel):
    results: list[SyncItemResult]
    created: int
    duplicate: int
    conflict: int
    invalid: int


class SyncBatch(SQLModel):
    """Checklists queued on a phone, sent at once; each item is a ChecklistSubmit."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    items: list[Any] = Field(description="ChecklistSubmit objects, oldest first")


class SyncedChecklist(SQLModel):
    id: uuid.UUID
    root_id: uuid.UUID
    version: int
    is_latest: bool
    station: str
    phase: str
    received_at: datetime
    review_state: str
    missing_attachments: list[str] | None = None


class SyncedReview(SQLModel):
    """An analyst's decision on one of the observer's checklists, with its comment."""

    checklist_id: uuid.UUID = Field(description="The version decided on")
    state: str = Field(description="received, has_issues, verified or rejected")
    comment: str = Field(description="The analyst's reason, written for the observer too")
    decided_at: datetime


class SyncPage(SQLModel):
    data: list[SyncedChecklist]
    reviews: list[SyncedReview] | None = Field(
        None,
        description="Review decisions since the cursor, oldest first; the last one per "
        "checklist stands. Quarantine-only changes stay inside the mission and are not listed",
    )
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` next time; absent when nothing was returned yet"
    )
    more: bool = Field(description="Another page is ready now")
