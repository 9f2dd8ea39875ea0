"""How far the findings have caught up with what was stored: a cheap answer for a client
that posted checklists and waits until the findings include them."""

from __future__ import annotations

import uuid

from sqlalchemy import Float, func, literal_column, select
from sqlalchemy.orm import Session

from api.services.findings.fold import seconds_behind, unfolded_since
from models import ChecklistChange, FindingFold, FindingState, Mission
from models.base import table_of, utcnow
from models.finding import DataVersionPublic

CHG = table_of(ChecklistChange)
FF = table_of(FindingFold)
FS = table_of(FindingState)
MISSION = table_of(Mission)

# How far a streaming replica is behind its primary, in seconds (NULL on the primary): 0
# when it has replayed all it received, else the age of the last transaction it replayed.
REPLICA_LAG = literal_column(
    "CASE WHEN NOT pg_is_in_recovery() THEN NULL"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0"
    " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END",
    Float,
)


def lag_seconds(value: float | None) -> float | None:
    """REPLICA_LAG as answered: to the millisecond, never negative (clocks), None on the
    primary."""
    return None if value is None else max(0.0, round(float(value), 3))


def data_version(session: Session, mission_id: uuid.UUID) -> DataVersionPublic | None:
    """The mission's findings data version and whether every stored change is folded in
    (None for an unknown mission), and how far behind the findings are. Five index
    lookups, whatever the mission's size.

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
            unfolded_since(mission_id),
        ).where(MISSION.c.id == mission_id)
    ).first()
    if found is None:
        return None
    _, version, folded_at, latest, through, since = found
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
        findings_lag_s=round(seconds_behind(since, utcnow()), 3),
    )


def with_replica(replica: Session, found: DataVersionPublic) -> DataVersionPublic:
    """`found` (read on the primary) with the replica's data version and lag: the findings
    a dashboard reads from the replica include every stored change only once the replica
    holds the primary's data version too."""
    version, lag = replica.execute(
        select(
            select(FS.c.version).where(FS.c.mission_id == found.mission_id).scalar_subquery(),
            REPLICA_LAG,
        )
    ).one()
    version = version or 0
    return found.model_copy(
        update={
            "replica_version": version,
            "replica_lag_s": lag_seconds(lag),
            "caught_up": found.caught_up and version >= found.data_version,
        }
    )
