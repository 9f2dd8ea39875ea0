"""The change outbox: whatever changes which checklists count records it here, in the same
transaction, so that findings (incremental aggregates, caches, ETags) see every change, and
once the transaction commits every API process's live event stream hears of it
(`api.notify`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, event, func, literal, select
from sqlalchemy.orm import Session

from api import notify
from models import ChecklistChange
from models.base import table_of, utcnow

CHG = table_of(ChecklistChange)

# What a change was (`checklist_change.kind`); the event stream tells consoles of the first
# and the last. PostgreSQL's one-statement intake writes the first two itself.
STORED = "stored"  # a new checklist or a new version of one
REPLACED = "replaced"  # a version that a correction replaced
REVIEW = "review"  # a review decision (state, quarantine)

_ANNOUNCE = "pollcheck.announce"


def record(
    session: Session,
    mission_id: uuid.UUID,
    checklist_ids: Iterable[uuid.UUID],
    kind: str | None = None,
    replaced: Iterable[uuid.UUID] = (),
    at: datetime | None = None,
) -> None:
    """Outbox rows for these checklists (of `kind`) and for the versions they `replaced`,
    made `at` (intake gives the checklist's `received_at`, as its one-statement writer does)."""
    now = at or utcnow()
    rows = [
        {"mission_id": mission_id, "checklist_id": cid, "created_at": now, "kind": kind}
        for cid in checklist_ids
    ] + [
        {"mission_id": mission_id, "checklist_id": cid, "created_at": now, "kind": REPLACED}
        for cid in replaced
    ]
    if len(rows) == 1:
        # One row: a plain execute (no executemany), on the connection (no ORM layer).
        session.connection().execute(CHG.insert(), rows[0])
    elif rows:
        session.connection().execute(CHG.insert(), rows)
    if rows:
        announce(session)


def record_selected(session: Session, mission_id: uuid.UUID, checklist_ids: Select[Any]) -> int:
    """Outbox rows for the checklists a query selects (one column, their ids), written by
    the database in one statement however many there are; how many it wrote."""
    rows = select(
        literal(mission_id, CHG.c.mission_id.type),
        checklist_ids.subquery().c[0],
        literal(utcnow(), CHG.c.created_at.type),
    )
    written = (
        session.connection()
        .execute(CHG.insert().from_select(["mission_id", "checklist_id", "created_at"], rows))
        .rowcount
    )
    if written:
        announce(session)
    return int(written)


def announce(session: Session) -> None:
    """Tell the live event streams of every process that changes were stored: at once when
    `session` has nothing left to commit, else when it commits (never if it rolls back)."""
    if session.in_transaction():
        session.info[_ANNOUNCE] = True
    else:
        notify.poke()


@event.listens_for(Session, "after_commit")
def _announce_committed(session: Session) -> None:
    # A savepoint's release also counts as a commit here: wait for the real one.
    if _ANNOUNCE in session.info and not session.in_nested_transaction():
        del session.info[_ANNOUNCE]
        notify.poke()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    # A batch rolls back one checklist's savepoint and commits the others.
    if _ANNOUNCE in session.info and not session.in_nested_transaction():
        del session.info[_ANNOUNCE]


def data_version(session: Session, mission_id: uuid.UUID) -> int:
    """The newest change id of the mission: equal versions mean equal findings inputs."""
    return session.scalar(select(func.max(CHG.c.id)).where(CHG.c.mission_id == mission_id)) or 0
