"""The change outbox: whatever changes which checklists count records it here, in the same
transaction, so that findings (incremental aggregates, caches, ETags) see every change."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ChecklistChange
from models.base import table_of, utcnow

CHG = table_of(ChecklistChange)


def record(session: Session, mission_id: uuid.UUID, checklist_ids: Iterable[uuid.UUID]) -> None:
    now = utcnow()
    rows = [
        {"mission_id": mission_id, "checklist_id": cid, "created_at": now} for cid in checklist_ids
    ]
    if len(rows) == 1:
        # One row: a plain execute (no executemany), on the connection (no ORM layer).
        session.connection().execute(CHG.insert(), rows[0])
    elif rows:
        session.connection().execute(CHG.insert(), rows)


def data_version(session: Session, mission_id: uuid.UUID) -> int:
    """The newest change id of the mission: equal versions mean equal findings inputs."""
    return session.scalar(select(func.max(CHG.c.id)).where(CHG.c.mission_id == mission_id)) or 0
