"""Review decisions on checklists: every change of review state or quarantine is a row."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, model_validator
from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from models.base import UTCDateTime, utcnow
from models.checklist import ChecklistPublic, Hold, ReviewState


class ReviewEvent(SQLModel, table=True):
    """One analyst decision: the state and quarantine before and after, with the reason."""

    __tablename__ = "review_event"
    __table_args__ = (Index("ix_review_event_checklist_id_id", "checklist_id", "id"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    mission_id: uuid.UUID = Field(foreign_key="mission.id", index=True)
    checklist_id: uuid.UUID = Field(sa_column_args=[ForeignKey("checklist.id")])
    state_before: ReviewState = Field(sa_type=String(16))
    state_after: ReviewState = Field(sa_type=String(16))
    quarantined_before: bool
    quarantined_after: bool
    hold_before: Hold | None = Field(default=None, sa_type=String(32))
    hold_after: Hold | None = Field(default=None, sa_type=String(32))
    comment: str = Field(sa_column=Column(Text, nullable=False))
    credential_id: uuid.UUID = Field(foreign_key="credential.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ReviewCreate(SQLModel):
    """A review decision: a new state, a quarantine change, or both, always with a comment."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]
    state: ReviewState | None = Field(None, description="The new review state; omit to keep it")
    quarantined: bool | None = Field(
        None, description="Hold the checklist out of the findings (true) or let it back (false)"
    )
    comment: str = Field(
        min_length=1, max_length=2000, description="Why: shown in the history and the audit trail"
    )
    expected_state: ReviewState | None = Field(
        None,
        description="The review state the analyst saw: when it has changed meanwhile (another "
        "analyst decided), nothing is written and the answer is 409 review_changed",
    )
    expected_quarantined: bool | None = Field(
        None, description="The quarantine the analyst saw, checked as `expected_state` is"
    )

    @model_validator(mode="after")
    def _changes_something(self) -> ReviewCreate:
        if self.state is None and self.quarantined is None:
            raise ValueError("give `state`, `quarantined` or both")
        if not self.comment.strip():
            raise ValueError("the comment must say something")
        return self


class ReviewPublic(SQLModel):
    id: int
    checklist_id: uuid.UUID
    version: int
    state_before: ReviewState
    state_after: ReviewState
    quarantined_before: bool
    quarantined_after: bool
    hold_before: Hold | None = None
    hold_after: Hold | None = None
    comment: str
    credential_id: uuid.UUID
    created_at: datetime


class ReviewsPublic(SQLModel):
    data: list[ReviewPublic]
    count: int


class QueueReason(StrEnum):
    """Why a checklist is in the review queue, most urgent first (the queue's order)."""

    critical = "critical"  # an answer the template marks critical
    counting = "counting"  # a counting report that fails a check of the protocol
    clock = "clock"  # the phone's clock was off when it sent (`clock_flagged`)
    unreviewed = "unreviewed"  # no analyst has decided on it yet (`received`)


class QueueState(StrEnum):
    """The review states the queue lists: `open` is received and has_issues, `any` all."""

    open = "open"
    any = "any"
    received = "received"
    has_issues = "has_issues"
    verified = "verified"
    rejected = "rejected"


class QueueItem(SQLModel):
    checklist: ChecklistPublic
    reasons: list[QueueReason] = Field(
        description="Every reason it is in the queue, most urgent first"
    )
    critical: list[str] = Field(
        default_factory=list, description="Its critical answers, as `code=value`"
    )
    fails: list[str] = Field(
        default_factory=list, description="The counting checks its report fails, by name"
    )


class QueuePublic(SQLModel):
    data: list[QueueItem]
    count: int = Field(description="Items on this page")
    total: int = Field(description="Checklists the filters select, counted up to `total_limit`")
    total_limit: int = Field(
        description="Where the count stops: a `total` equal to it means at least so many"
    )
    next_cursor: str | None = None
    checks: dict[str, str] = Field(
        default_factory=dict,
        description="What each counting check named in the items' `fails` says, in `lang`",
    )
    answers: dict[str, str] = Field(
        default_factory=dict,
        description="Each critical answer named in the items (`code=value`) as the "
        "question's label and the answer's, in `lang`",
    )
