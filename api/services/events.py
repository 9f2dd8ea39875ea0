"""What the live event stream says, read from the change outbox: plain functions on a
session, shared by the live tail (`api.live`) and the replay a reconnecting console gets.

Events come from `checklist_change` rows: a `stored` row is a `checklist` event, a `review`
row a `review` event (`replaced` rows and rows from before migration 0011 say nothing a
console needs: the `findings` event covers them). The `findings` event comes from the
mission's findings data version (`finding_state`), which the fold moves.

An event id is a cursor, `<change id>.<findings version>`: every change of the mission up
to that change id has been sent, and the findings version the console was last told. On
PostgreSQL change ids are taken in one order and committed in another, so the tail keeps
the ids it has not seen yet below the newest one it has (`Tail.missing`) until each either
appears or can no longer appear (as the fold does, `fold._window`); the change id of a
cursor is never past such a hole, so a console that resumes from it gets what filled it.
After a reconnect an event may come a second time: a console keys checklists by
`checklist_id` and `version`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select
from sqlalchemy.orm import Session

from api.services import changes
from api.services.changes import CHG
from api.services.findings.fold import AN, FS, _in_flight_before, _snapshot
from api.services.findings.scope import CL, ST
from api.services.review import REV
from models import Credential
from models.base import table_of

CRED = table_of(Credential)

REPLAY_MAX = 500  # more missed events than this: the console reloads its panels instead
BACKLOG = 1000  # ids below the newest that a new tail checks for late commits
BATCH = 5000  # outbox rows read per look
MISSING_MAX = 10_000  # holes the tail waits for at most (a flood of rollbacks)
GAP_GRACE_S = 120.0  # a fallback: no transaction holds an outbox id for that long
TOLD = (changes.STORED, changes.REVIEW)


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one mission's stream; `change_id` is None for findings events."""

    mission_id: uuid.UUID
    name: str
    data: dict[str, Any]
    change_id: int | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    change_id: int
    version: int

    def __str__(self) -> str:
        return f"{self.change_id}.{self.version}"

    @staticmethod
    def parse(text: str | None) -> Cursor | None:
        """The cursor of a `Last-Event-ID`, or None when it is not one of ours."""
        if not text:
            return None
        head, _, tail = text.strip().partition(".")
        if not (head.isdigit() and tail.isdigit()) or len(head) > 19 or len(tail) > 19:
            return None
        return Cursor(int(head), int(tail))


@dataclass(slots=True)
class Tail:
    """Where one process's tail of the outbox stands: every id up to `hi` was looked at,
    except the `missing` ones (with the snapshot xmax and time when each was first missed)."""

    hi: int
    missing: dict[int, tuple[int, float]] = field(default_factory=dict)

    @property
    def floor(self) -> int:
        """Every id up to here has been seen, or can no longer appear."""
        return min(self.missing) - 1 if self.missing else self.hi


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def start_tail(session: Session) -> Tail:
    """A tail from now on; ids of the last `BACKLOG` that are not there yet may still be
    committing, and are waited for like any other hole."""
    hi = session.scalar(select(func.max(CHG.c.id))) or 0
    tail = Tail(hi)
    if _postgres(session) and hi:
        present = set(session.scalars(select(CHG.c.id).where(CHG.c.id > hi - BACKLOG)))
        xmax, now = _snapshot(session, "xmax"), time.monotonic()
        lowest = max(1, hi - BACKLOG + 1)
        tail.missing = {i: (xmax, now) for i in range(lowest, hi) if i not in present}
        _settle(session, tail, now)
    return tail


_FRESH = (
    select(CHG.c.id, CHG.c.mission_id, CHG.c.checklist_id, CHG.c.kind)
    .where(or_(CHG.c.id > bindparam("hi"), CHG.c.id.in_(bindparam("missing", expanding=True))))
    .order_by(CHG.c.id)
    .limit(BATCH)
)


def advance(session: Session, tail: Tail, missions: set[uuid.UUID]) -> list[Event]:
    """The events of `missions` among the changes committed since the last look, in id
    order; moves `tail` on."""
    rows = session.execute(_FRESH, {"hi": tail.hi, "missing": list(tail.missing)}).all()
    postgres = _postgres(session)
    now = time.monotonic()
    xmax = 0
    for row in rows:
        tail.missing.pop(row.id, None)
        if row.id > tail.hi:
            if postgres and row.id > tail.hi + 1:
                xmax = xmax or _snapshot(session, "xmax")
                tail.missing.update((i, (xmax, now)) for i in range(tail.hi + 1, row.id))
            tail.hi = row.id
    _settle(session, tail, now)
    return describe(session, [r for r in rows if r.mission_id in missions])


def _settle(session: Session, tail: Tail, now: float) -> None:
    """Forget holes that can no longer fill: every transaction that could hold one has
    ended (or, as a fallback, it is very old)."""
    if not tail.missing:
        return
    oldest = min(x for x, _ in tail.missing.values())
    if not _in_flight_before(session, oldest):
        tail.missing = {i: m for i, m in tail.missing.items() if m[0] > oldest}
    tail.missing = {i: m for i, m in tail.missing.items() if now - m[1] < GAP_GRACE_S}
    if len(tail.missing) > MISSING_MAX:
        tail.missing = dict(sorted(tail.missing.items())[-MISSING_MAX:])


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def describe(session: Session, rows: Sequence[Any]) -> list[Event]:
    """Events for outbox rows (id, mission_id, checklist_id, kind), in their order; rows of
    other kinds make none."""
    told = [r for r in rows if r.kind in TOLD]
    if not told:
        return []
    critical = exists().where(AN.c.checklist_id == CL.c.id, AN.c.critical)
    comment = (
        select(REV.c.comment)
        .where(REV.c.checklist_id == CL.c.id)
        .order_by(REV.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    details = {
        d.id: d
        for d in session.execute(
            select(
                CL.c.id,
                CL.c.version,
                CL.c.phase,
                CL.c.received_at,
                CL.c.replaces_id,
                CL.c.review_state,
                CL.c.quarantined,
                ST.c.code,
                critical.label("critical"),
                comment.label("comment"),
            )
            .join(ST, ST.c.id == CL.c.station_id)
            .where(CL.c.id.in_({r.checklist_id for r in told}))
        )
    }
    out = []
    for r in told:
        d = details.get(r.checklist_id)
        if d is None:
            continue
        if r.kind == changes.STORED:
            data = {
                "checklist_id": str(d.id),
                "version": d.version,
                "station_code": d.code,
                "phase": d.phase,
                "correction": d.replaces_id is not None,
                "critical": bool(d.critical),
                "received_at": _iso(d.received_at),
            }
            out.append(Event(r.mission_id, "checklist", data, r.id))
        else:
            data = {
                "checklist_id": str(d.id),
                "version": d.version,
                "state": d.review_state,
                "quarantined": bool(d.quarantined),
                "comment_present": bool((d.comment or "").strip()),
            }
            out.append(Event(r.mission_id, "review", data, r.id))
    return out


def replay(session: Session, mission_id: uuid.UUID, after: int) -> list[Event] | None:
    """The mission's events after change id `after`, or None when they are too many to
    replay (or `after` is not a cursor of this database)."""
    newest = session.scalar(select(func.max(CHG.c.id))) or 0
    if after > newest:
        return None
    rows = session.execute(
        select(CHG.c.id, CHG.c.mission_id, CHG.c.checklist_id, CHG.c.kind)
        .where(CHG.c.mission_id == mission_id, CHG.c.id > after, CHG.c.kind.in_(TOLD))
        .order_by(CHG.c.id)
        .limit(REPLAY_MAX + 1)
    ).all()
    if len(rows) > REPLAY_MAX:
        return None
    return describe(session, rows)


def findings_versions(session: Session, missions: set[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each mission's findings data version (0 before its first fold)."""
    found: dict[uuid.UUID, int] = {
        row.mission_id: row.version
        for row in session.execute(
            select(FS.c.mission_id, FS.c.version).where(FS.c.mission_id.in_(missions))
        )
    }
    return {m: int(found.get(m, 0)) for m in missions}


def valid_credentials(session: Session, ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Those of these credentials that still exist and are not revoked."""
    if not ids:
        return set()
    return set(
        session.scalars(select(CRED.c.id).where(CRED.c.id.in_(ids), CRED.c.revoked_at.is_(None)))
    )
