"""The review queue: the latest checklists an analyst should look at, most urgent first.

A checklist is listed by the most urgent of its reasons (`QueueReason`): a critical answer,
then a counting report failing a check, then a phone clock that was off, then no decision
yet; the others last. Within a reason the newest arrivals come first. Each reason is read
as a list of its own, from an index of its own (`RANKS`), and a page takes the first rows
of one list after another. So a page costs about the same at a million checklists as at
a thousand, where ranking every checklist of the mission would read them all (the console
did so in the browser: every latest checklist, a thousand a request).

Critical answers and clock flags come with the checklist and never change (intake marks a
checklist with a critical answer, `critical`); a counting report's failed checks are those
the fold last checked (`finding_count_report`), so a report counts here once it counts in
the findings, and a list of failing reports is read from their own index.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, literal, literal_column, not_, or_, select, true
from sqlalchemy.orm import Session

from api.deps import Principal
from api.services.checklists import bad_cursor
from api.services.findings.counting import CHECKS, FAILING, check_rules
from api.services.findings.questions import catalog
from api.services.intake.storage import AN, CL, ST, public, public_query
from api.services.sql import IN_LIST, one_of
from models import FindingCountReport, Mission
from models.base import table_of
from models.checklist import ReviewState
from models.review import QueueItem, QueuePublic, QueueReason, QueueState

FCR = table_of(FindingCountReport)
MISSION = table_of(Mission)

# The queue's count stops here: "1,000 or more" tells an analyst as much as the exact
# figure would, and counting on to 10,000 took 60 ms of a 100,000-checklist mission's.
TOTAL_LIMIT = 1_000


def _state(value: str) -> Any:
    # A literal, not a parameter, so that any plan of the statement, a generic one too,
    # can use the index of decided checklists (`ix_checklist_decided`).
    return literal_column(f"'{ReviewState(value).value}'")


# Each reason's condition, in the queue's order; the last rank holds the others. Plain
# columns, not `IS true`: PostgreSQL proves a partial index's condition from these only
# (`ix_checklist_critical`, `ix_checklist_clock`).
MEMBER: dict[QueueReason, Any] = {
    QueueReason.critical: CL.c.critical,
    QueueReason.counting: exists().where(FCR.c.checklist_id == CL.c.id, FAILING),
    QueueReason.clock: CL.c.clock_flagged,
    QueueReason.unreviewed: CL.c.review_state == _state("received"),
}
REASONS = list(MEMBER)
RANKS = len(REASONS) + 1


def _rank(rank: int, reason: QueueReason | None) -> tuple[set[QueueReason], list[Any]]:
    """The checklists listed at `rank` under a `reason` filter: the reasons they all have
    (the rank's own and the filter's), and the other conditions: none of the more urgent
    reasons, and for the last rank a decision (`ix_checklist_decided`)."""
    held = {r for r in (REASONS[rank] if rank < len(REASONS) else None, reason) if r}
    others = [not_(MEMBER[r]) for r in REASONS[:rank]]
    if rank == len(REASONS):
        others.append(CL.c.review_state != _state("received"))
    return held, others


def _having(q: Any, reasons: set[QueueReason], mission_id: uuid.UUID) -> tuple[Any, Any, Any]:
    """`q` narrowed to the checklists with each of `reasons`, and the two columns that order
    it newest first. Failing counting reports are read from their own index, newest first,
    and joined to their checklists: looked up from the checklists instead, a list of them
    walked the mission (a second at a million checklists)."""
    q = q.where(*(MEMBER[r] for r in reasons if r != QueueReason.counting))
    if QueueReason.counting not in reasons:
        return q, CL.c.received_at, CL.c.id
    q = q.join(FCR, FCR.c.checklist_id == CL.c.id).where(FCR.c.mission_id == mission_id, FAILING)
    if QueueReason.critical in reasons:
        # The report's own copy of the mark, so that the failing and critical reports are
        # an index of their own (`ix_finding_count_report_failing_critical`): looked up
        # from the failing ones, a mission where none is critical had every failing
        # report looked at (8,283 at a million checklists, 41 to 72 ms).
        q = q.where(FCR.c.critical)
    return q, FCR.c.received_at, FCR.c.checklist_id


def _states(state: QueueState) -> Any:
    if state == QueueState.any:
        return true()
    if state == QueueState.open:
        return CL.c.review_state.in_([_state("received"), _state("has_issues")])
    return CL.c.review_state == _state(state.value)


def _may_hold(rank: int, reason: QueueReason | None, state: QueueState) -> bool:
    """Whether `rank` can list anything under the filters, so that a list that cannot is
    not read at all (the database would walk the mission's index to find it empty)."""
    if reason is not None and rank > REASONS.index(reason):
        return False  # a later rank leaves the reason out
    if rank == REASONS.index(QueueReason.unreviewed):
        return state in (QueueState.any, QueueState.open, QueueState.received)
    if rank == len(REASONS):
        return state != QueueState.received
    return True


def encode_cursor(rank: int, received_at: datetime, checklist_id: uuid.UUID) -> str:
    text = f"{rank}|{received_at.isoformat()}|{checklist_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, datetime, uuid.UUID]:
    try:
        rank, at, cid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        decoded = int(rank), datetime.fromisoformat(at), uuid.UUID(cid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_cursor() from exc
    if not 0 <= decoded[0] < RANKS:
        raise bad_cursor()
    return decoded


def review_queue(
    session: Session,
    principal: Principal,
    *,
    reason: QueueReason | None = None,
    phase: str | None = None,
    state: QueueState = QueueState.open,
    station: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
    language: str | None = None,
) -> QueuePublic:
    """A page of the mission's queue under the filters (`station`: part of its code), the
    checks its counting reports fail said in `language` (default: the mission's first)."""
    # `is_latest`, not `is_latest IS true`: PostgreSQL proves a partial index's condition
    # from the plain one only.
    mission_id = principal.mission_id
    selected = [CL.c.mission_id == mission_id, CL.c.is_latest, _states(state)]
    if phase:
        selected.append(CL.c.phase == phase)
    if station:
        stations = _stations(session, mission_id, station)
        if isinstance(stations, list) and not stations:
            return QueuePublic(data=[], count=0, total=0, total_limit=TOTAL_LIMIT)
        selected.append(one_of(CL.c.station_id, stations))
    first, after = (0, None) if cursor is None else _split(decode_cursor(cursor))
    listed: list[tuple[int, Any]] = []
    for rank in range(first, RANKS):
        if len(listed) > limit:
            break
        if not _may_hold(rank, reason, state):
            continue
        held, others = _rank(rank, reason)
        q = public_query().add_columns(CL.c.critical).where(*selected, *others)
        q, at, cid = _having(q, held, mission_id)
        if rank == first and after is not None:
            at_, cid_ = after
            q = q.where(or_(at < at_, and_(at == at_, cid < cid_)))
        q = q.order_by(at.desc(), cid.desc()).limit(limit + 1 - len(listed))
        listed.extend((rank, row) for row in session.execute(q))
    page = listed[:limit]
    items = _items([row for _, row in page], session)
    next_cursor = None
    if len(listed) > limit:
        rank, row = page[-1]
        next_cursor = encode_cursor(rank, row.received_at, row.id)
    counted, _, _ = _having(
        select(CL.c.id).select_from(CL).where(*selected), {reason} if reason else set(), mission_id
    )
    capped = counted.limit(TOTAL_LIMIT).subquery()
    total = session.scalar(select(func.count()).select_from(capped)) or 0
    named = {name for item in items for name in item.fails}
    answered = {answer for item in items for answer in item.critical}
    # The mission's own language is read only for a page that has something to say.
    if named or answered:
        language = language or _first_language(session, mission_id)
    rules = check_rules(language or "en")
    return QueuePublic(
        data=items,
        count=len(items),
        total=total,
        total_limit=TOTAL_LIMIT,
        next_cursor=next_cursor,
        checks={name: rules[name] for name in named},
        answers=_answers_said(session, mission_id, answered, language or "en"),
    )


def _answers_said(
    session: Session, mission_id: uuid.UUID, answered: set[str], language: str
) -> dict[str, str]:
    """Each `code=value` as its question's label and its answer's, in `language`."""
    if not answered:
        return {}
    questions = catalog(session, mission_id, language)
    said = {}
    for answer in answered:
        code, _, value = answer.partition("=")
        q = questions.get(code)
        said[answer] = f"{q.label} — {q.options.get(value, value)}" if q else answer
    return said


def _first_language(session: Session, mission_id: uuid.UUID) -> str:
    languages = session.scalar(select(MISSION.c.languages).where(MISSION.c.id == mission_id))
    return (languages or ["en"])[0]


def _stations(session: Session, mission_id: uuid.UUID, part: str) -> list[Any] | Any:
    """The stations whose code holds `part`, in any case: their ids, read once rather than
    matched again by every statement of the page (9 ms each at 20,000 stations), or the
    query itself when they are too many to bind (kept as a query even on PostgreSQL: "7"
    bound as an array of 8,000 ids made a page take 100 ms against 37 to 47). Both sides
    go through `upper` and LIKE: PostgreSQL's ILIKE folds the case of every character of a
    UTF-8 database itself (20,000 codes in 16.5 to 17.2 ms against 10.5 to 14.2)."""
    escaped = part.replace("/", "//").replace("%", "/%").replace("_", "/_")
    holds = func.upper(ST.c.code).like(func.upper(literal(f"%{escaped}%")), escape="/")
    matching = select(ST.c.id).where(ST.c.mission_id == mission_id, holds)
    ids = list(session.scalars(matching.limit(IN_LIST + 1)))
    return ids if len(ids) <= IN_LIST else matching


def _split(decoded: tuple[int, datetime, uuid.UUID]) -> tuple[int, tuple[datetime, uuid.UUID]]:
    rank, at, cid = decoded
    return rank, (at, cid)


def _items(rows: Sequence[Any], session: Session) -> list[QueueItem]:
    """The page's checklists with their reasons: the critical answers of those that have
    one and the checks their counting reports fail, read for the page's ids only."""
    checklists = [public(row) for row in rows]
    ids = [c.id for c in checklists]
    critical: dict[uuid.UUID, list[str]] = {}
    fails: dict[uuid.UUID, list[str]] = {}
    if ids:
        marked = [row.id for row in rows if row.critical]
        answers = (
            select(AN.c.checklist_id, AN.c.question_code, AN.c.value)
            .where(one_of(AN.c.checklist_id, marked), AN.c.critical)
            .order_by(AN.c.checklist_id, AN.c.question_code, AN.c.position)
        )
        for cid, code, value in session.execute(answers) if marked else ():
            critical.setdefault(cid, []).append(f"{code}={value}")
        reports = session.execute(
            select(FCR.c.checklist_id, FCR.c.fails).where(one_of(FCR.c.checklist_id, ids), FAILING)
        )
        for cid, bits in reports:
            fails[cid] = [name for bit, name in enumerate(CHECKS) if bits >> bit & 1]
    items = []
    for c in checklists:
        held = {
            QueueReason.critical: c.id in critical,
            QueueReason.counting: c.id in fails,
            QueueReason.clock: c.clock_flagged,
            QueueReason.unreviewed: c.review_state == ReviewState.received,
        }
        items.append(
            QueueItem(
                checklist=c,
                reasons=[r for r in REASONS if held[r]],
                critical=critical.get(c.id, []),
                fails=fails.get(c.id, []),
            )
        )
    return items
