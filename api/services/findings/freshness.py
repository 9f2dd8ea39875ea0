"""How far the findings have caught up with what was stored: a cheap answer for a client
that posted checklists and waits until the findings include them."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ChecklistChange, FindingFold, FindingState, Mission
from models.base import table_of
from models.finding import DataVersionPublic

CHG = table_of(ChecklistChange)
FF = table_of(FindingFold)
FS = table_of(FindingState)
MISSION = table_of(Mission)


def data_version(session: Session, mission_id: uuid.UUID) -> DataVersionPublic | None:
    """The mission's findings data version and whether every stored change is folded in
    (None for an unknown mission). Four index lookups, whatever the mission's size.

    `folded_through` is the fold's contiguous cursor: a change at or below it is in the
    tallies. Changes past a gap may be folded already; they count as pending until the
    gap closes, so `caught_up` can be late by a moment but is never early."""
    found = session.execute(
        select(
            MISSION.c.id,
            select(FS.c.version).where(FS.c.mission_id == mission_id).scalar_subquery(),
            select(FS.c.folded_at).where(FS.c.mission_id == mission_id).scalar_subquery(),
            select(func.max(CHG.c.id)).where(CHG.c.mission_id == mission_id).scalar_subquery(),
            select(FF.c.last_change_id).where(FF.c.id == 1).scalar_subquery(),
        ).where(MISSION.c.id == mission_id)
    ).first()
    if found is None:
        return None
    _, version, folded_at, latest, through = found
    latest, through = latest or 0, through or 0
    pending = 0
    if latest > through:
        pending = (
            session.scalar(
                select(func.count())
                .select_from(CHG)
                .where(CHG.c.mission_id == mission_id, CHG.c.id > through)
            )
            or 0
        )
    return DataVersionPublic(
        mission_id=mission_id,
        data_version=version or 0,
        folded_at=folded_at,
        latest_change=latest,
        folded_through=through,
        pending_changes=pending,
        caught_up=pending == 0,
    )
