from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import AwareDatetime, ConfigDict
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

from models.attachment import AttachmentDeclared
from models.base import UTCDateTime, utcnow


class Hold(StrEnum):
    """Why a correction waits for an analyst before it counts: the version it corrects was
    rejected or quarantined (or was itself waiting)."""

    correction_of_rejected = "correction_of_rejected"
    correction_of_quarantined = "correction_of_quarantined"


class ReviewState(StrEnum):
    received = "received"
    has_issues = "has_issues"
    verified = "verified"
    rejected = "rejected"


class Checklist(SQLModel, table=True):
    """One version of one checklist; `id` is the client-made UUID (the idempotency key).

    A correction is a new row naming the version it replaces (`replaces_id`, unique, so a
    version can be replaced once) in the same chain (`root_id`); only `is_latest` counts.
    """

    __table_args__ = (
        Index("ix_checklist_root_id_version", "root_id", "version", unique=True),
        # PostgreSQL: with what coverage's arrivals per hour group and filter by, so that
        # they are counted from the index alone (an index-only scan), not from the rows.
        Index(
            "ix_checklist_mission_id_received_at",
            "mission_id",
            "received_at",
            postgresql_include=["phase", "version", "station_id"],
        ),
        Index("ix_checklist_observer_id_received_at", "observer_id", "received_at"),
        Index("ix_checklist_station_id", "station_id"),
        Index(
            "ix_checklist_latest",
            "mission_id",
            "phase",
            postgresql_where=text("is_latest"),
            sqlite_where=text("is_latest"),
        ),
        # The review queue's lists that are few among many (`api.services.queue`), newest
        # first: the checklists with a critical answer (of the mission, and of one phase),
        # the clocks that were off, and the checklists an analyst has decided on. None takes
        # an entry for a new checklist with a good clock and no critical answer.
        Index(
            "ix_checklist_critical",
            "mission_id",
            "received_at",
            postgresql_where=text("is_latest AND critical"),
            sqlite_where=text("is_latest = 1 AND critical = 1"),
        ),
        Index(
            "ix_checklist_critical_phase",
            "mission_id",
            "phase",
            "received_at",
            postgresql_where=text("is_latest AND critical"),
            sqlite_where=text("is_latest = 1 AND critical = 1"),
        ),
        Index(
            "ix_checklist_clock",
            "mission_id",
            "received_at",
            postgresql_where=text("is_latest AND clock_flagged"),
            sqlite_where=text("is_latest = 1 AND clock_flagged = 1"),
        ),
        Index(
            "ix_checklist_decided",
            "mission_id",
            "received_at",
            postgresql_where=text("is_latest AND review_state <> 'received'"),
            sqlite_where=text("is_latest = 1 AND review_state <> 'received'"),
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    root_id: uuid.UUID
    version: int = 1
    replaces_id: uuid.UUID | None = Field(
        default=None, sa_column_args=[ForeignKey("checklist.id")], unique=True
    )
    is_latest: bool = True
    mission_id: uuid.UUID = Field(foreign_key="mission.id")
    observer_id: uuid.UUID = Field(foreign_key="observer.id")
    station_id: uuid.UUID = Field(foreign_key="station.id")
    template_id: uuid.UUID = Field(foreign_key="checklist_template.id", index=True)
    phase: str = Field(sa_type=String(16))
    observed_at: datetime = Field(sa_type=UTCDateTime)
    observed_utc_offset_min: int = Field(sa_type=SmallInteger)
    device_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    clock_skew_s: int | None = None
    clock_flagged: bool = False
    # Whether an answer of this version is critical (`Answer.critical`), set with its row.
    critical: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    credential_id: uuid.UUID = Field(foreign_key="credential.id")
    payload: str = Field(sa_column=Column(Text, nullable=False))
    payload_sha256: str = Field(max_length=64)
    review_state: ReviewState = Field(default=ReviewState.received, sa_type=String(16))
    quarantined: bool = False
    # Set on a correction of a rejected or quarantined version: it stays out of the findings
    # until an analyst's decision on it clears the hold.
    hold: Hold | None = Field(default=None, sa_type=String(32))


class Answer(SQLModel, table=True):
    """One typed answer: closed answers in `value`, numbers also in `number` (minutes for times)."""

    # The counting findings read the protocol figures of every counting checklist by question
    # code. Only answers with a number are indexed (one in sixteen): without it PostgreSQL
    # scanned all the answers of a national mission for each of the counting view's queries.
    __table_args__ = (
        Index(
            "ix_answer_numbers",
            "question_code",
            "checklist_id",
            "number",
            postgresql_where=text("number IS NOT NULL"),
            sqlite_where=text("number IS NOT NULL"),
        ),
    )

    checklist_id: uuid.UUID = Field(
        sa_column_args=[ForeignKey("checklist.id", ondelete="CASCADE")], primary_key=True
    )
    question_code: str = Field(max_length=32, primary_key=True)
    position: int = Field(default=0, sa_type=SmallInteger, primary_key=True)
    value: str = Field(sa_column=Column(Text, nullable=False))
    number: int | None = Field(default=None, sa_type=BigInteger)
    critical: bool = False
    # How the findings count it: "closed" (per option), "number" (summed) or "other" (only
    # as answered); from the question's type (`api.checklist_schema.KIND_OF`).
    kind: str = Field(max_length=8)


class Phase(StrEnum):
    opening = "opening"
    voting = "voting"
    closing = "closing"
    incident = "incident"


# A phone whose clock says year 62 or 9334 is broken; refusing it here keeps date arithmetic
# (clock skew, "in the future") from overflowing further on.
PLAUSIBLE_FROM = datetime(2000, 1, 1, tzinfo=UTC)
PLAUSIBLE_TO = datetime(2100, 1, 1, tzinfo=UTC)
# The bounds go in the type: sqlmodel's `Field(ge=, le=)` is typed for numbers only.
PlausibleTime = Annotated[AwareDatetime, Interval(ge=PLAUSIBLE_FROM, le=PLAUSIBLE_TO)]


class ChecklistSubmit(SQLModel):
    """A checklist as a phone sends it."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    id: uuid.UUID = Field(description="Made by the phone once per version; resending it is safe")
    station: str = Field(max_length=64, description="Station code")
    template: str = Field(max_length=32, description="Template code")
    template_version: int = Field(ge=1, le=1_000_000)
    phase: Phase
    observed_at: PlausibleTime = Field(
        description="Device time of the observation, with UTC offset",
    )
    sent_at: PlausibleTime | None = Field(
        None,
        description="Device clock when sending; lets the server spot a clock that is off",
    )
    replaces: uuid.UUID | None = Field(None, description="The version this one corrects")
    answers: dict[str, Any] = Field(description="Answers keyed by question code")
    attachments: list[AttachmentDeclared] | None = Field(
        None, description="Files (photos) uploaded separately, each by name and SHA-256"
    )


class ChecklistPublic(SQLModel):
    id: uuid.UUID
    root_id: uuid.UUID
    version: int
    replaces_id: uuid.UUID | None
    is_latest: bool
    station: str
    observer_id: uuid.UUID
    template: str
    template_version: int
    phase: Phase
    observed_at: datetime
    observed_utc_offset_min: int
    clock_skew_s: int | None
    clock_flagged: bool
    received_at: datetime
    review_state: ReviewState
    quarantined: bool
    hold: Hold | None = Field(
        None, description="Set while a correction of a rejected or quarantined version waits"
    )


class ChecklistDetail(ChecklistPublic):
    answers: dict[str, Any] = Field(description="The answers as the phone sent them")


class ChecklistsPublic(SQLModel):
    data: list[ChecklistPublic]
    count: int
    next_cursor: str | None = None


class ChecklistChange(SQLModel, table=True):
    """Outbox of changes to what counts: a row per checklist whose version, review state or
    quarantine changed, written in the same transaction as the change. Findings consume it
    to stay current without rescanning, its newest id per mission is a data version, and
    the live event stream tells consoles about it (`kind` says what changed)."""

    __tablename__ = "checklist_change"
    __table_args__ = (Index("ix_checklist_change_mission_id_id", "mission_id", "id"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    mission_id: uuid.UUID = Field(foreign_key="mission.id")
    checklist_id: uuid.UUID = Field(foreign_key="checklist.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: str | None = Field(
        default=None,
        max_length=8,
        description="stored, replaced or review (`api.services.changes`); none before 0011",
    )
