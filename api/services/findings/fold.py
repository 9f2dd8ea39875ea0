"""The fold: keeps the findings tallies current by consuming the change outbox.

A plain `GROUP BY` over every answer of a national mission takes around a second, so the
tallies are kept incrementally instead. Each fold, in one transaction:

1. takes the fold lock (PostgreSQL: a transaction advisory lock, so that one process in
   the whole deployment folds at a time; SQLite has a single writer anyway);
2. reads the outbox past its cursor and, for every checklist named there, compares
   "counts now" (latest, not rejected, not quarantined, not on hold) with "already in the tallies"
   (`finding_applied`); the difference is a set of +1 / -1 checklists;
3. turns those checklists' answers into signed tally rows, works out per station whether
   a value appears or disappears there (for the distinct-station counts), and adds the
   deltas at the station's place, every place above it, in-country/abroad and the whole
   mission with `INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`;
4. moves the cursor on and bumps the data version of every mission it touched.

All of it is set-based SQL; no answer row passes through Python. Folding the same change
twice is harmless (step 2 finds no difference), which is what makes the outbox safe even
though PostgreSQL may commit change ids out of order: the cursor only moves over ids that
are contiguous, or over a gap once every transaction that could still fill it has ended
(see `_window`), and the changes beyond a gap are folded at once and looked at again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from api import notify
from api.config import Settings, get_settings
from api.services import changes
from api.services.findings import plans
from api.services.findings.scope import CL, FA, FV, ST, counts, local_hour, utc_hour
from api.services.sql import dialect_insert, in_parts, insert_ignore, object_agg
from models import (
    Answer,
    ChecklistChange,
    FindingArrival,
    FindingCount,
    FindingCountReport,
    FindingCritical,
    FindingFold,
    FindingHeld,
    FindingIncident,
    FindingState,
    FindingTally,
)
from models.base import UTCDateTime, table_of, utcnow
from models.finding import NODE_ABROAD, NODE_ALL, NODE_IN_COUNTRY

log = logging.getLogger("pollcheck.findings")

AN = table_of(Answer)
CHG = table_of(ChecklistChange)
FC = table_of(FindingCritical)
FCNT = table_of(FindingCount)
FCR = table_of(FindingCountReport)
FAR = table_of(FindingArrival)
FF = table_of(FindingFold)
FH = table_of(FindingHeld)
FI = table_of(FindingIncident)
FS = table_of(FindingState)
FT = table_of(FindingTally)

FOLD_LOCK_KEY = 0x706F6C6C_66696E64  # "pollfind": one fold at a time across processes
AGAIN_S = 0.05  # pause before the next fold when the last one fell behind
LISTEN_GAP_S = 0.25  # with `listen`: the least time between the starts of two folds
GAP_GRACE_S = 600  # a fallback: no intake transaction runs for ten minutes
BATCH = 5000
# Changes folded in one transaction at most: one window. A catch-up (after a bulk load,
# or a fold process that was down at peak) rewrites each tally row once per window, and a
# row version left dead inside a transaction can only be vacuumed after its commit; the
# fold process vacuums between transactions (`vacuum_tallies`). With ten windows a
# transaction, folding 300,000 checklists left the tallies on 6,559 pages for 46,607 rows
# and the critical view read them all (29 to 30 ms); with one, 1,390 pages (17.6 to 18 ms),
# and the fold took as long (259.7 s against 263.8).
FOLD_LIMIT = BATCH
ANALYZE_AFTER = 1000  # checklists a fold applies before it checks the statistics
TALLY_COLUMNS = ("observations", "stations", "total", "critical")

_tmp = MetaData()


def _temporary(name: str, *columns: Column[Any]) -> Table:
    return Table(name, _tmp, *columns, prefixes=["TEMPORARY"])


def _signed_checklists(name: str) -> Table:
    """A temporary table of checklists with the sign (+1/-1) of their change to the tallies."""
    return _temporary(
        name,
        Column("checklist_id", Uuid, primary_key=True),
        Column("sign", Integer, nullable=False),
        Column("mission_id", Uuid, nullable=False),
        Column("station_id", Uuid, nullable=False),
        Column("phase", String(16), nullable=False),
        Column("observer_id", Uuid, nullable=False),
    )


TMP_SIGN = _signed_checklists("tmp_finding_sign")
TMP_BEFORE = _signed_checklists("tmp_finding_before")
SIGNED = [c.name for c in TMP_SIGN.columns]


def _applied_signed(sign: int) -> Any:
    """Applied checklists (finding_applied) as rows of a signed table, with this sign."""
    return select(
        FA.c.checklist_id,
        literal_column(str(sign)),
        FA.c.mission_id,
        FA.c.station_id,
        FA.c.phase,
        FA.c.observer_id,
    )


def _leaf_table(name: str, *columns: Column[Any]) -> Table:
    """A temporary table of deltas summed per place (then rolled up the location tree):
    the place's keys, then the table's own `columns`."""
    return _temporary(
        name,
        Column("mission_id", Uuid, nullable=False),
        Column("location_id", Uuid, nullable=False),
        Column("region_id", Uuid, nullable=False),
        Column("abroad", Boolean, nullable=False),
        *columns,
    )


TMP_LEAF = _leaf_table(
    "tmp_finding_leaf",
    Column("phase", String(16), nullable=False),
    Column("question_code", String(32), nullable=False),
    Column("value", String(64), nullable=False),
    *[Column(c, BigInteger, nullable=False) for c in TALLY_COLUMNS],
)

# The columns summed per station and value: the batch's change, and what the station held
# before it (the checklists holding the value).
PER_VALUE = ("d_obs", "d_total", "d_crit", "n0")

# Per station, phase, question and value: the batch's change to the tallies and what the
# station held before it (`PER_VALUE`), summed once and read twice: for the tallies, and
# for what each station holds after the batch (`finding_held`).
TMP_PER_VALUE = _temporary(
    "tmp_finding_per_value",
    Column("station_id", Uuid, nullable=False),
    Column("phase", String(16), nullable=False),
    Column("question_code", String(32), nullable=False),
    Column("value", String(64), nullable=False),
    *[Column(c, BigInteger, nullable=False) for c in PER_VALUE],
)

# The counting view's figures: the stations whose counting reports a batch changes, their
# figures before (subtracted) and after (added), and those summed per place.
TMP_COUNT_STATIONS = _temporary(
    "tmp_count_station",
    Column("station_id", Uuid, primary_key=True),
    Column("mission_id", Uuid, nullable=False),
)


def _counts() -> list[Column[Any]]:
    return [
        Column("measure", String(48), nullable=False),
        Column("amount", BigInteger, nullable=False),
    ]


TMP_COUNT = _temporary("tmp_count", Column("station_id", Uuid, nullable=False), *_counts())
TMP_COUNT_LEAF = _leaf_table("tmp_count_leaf", *_counts())

# The applied checklists whose review state a batch changes, read once: the counting
# figures are taken out and put back for exactly these, and exactly these are copied.
TMP_REVIEW = _temporary(
    "tmp_finding_review",
    Column("checklist_id", Uuid, primary_key=True),
    Column("review_state", String(16), nullable=False),
    Column("mission_id", Uuid, nullable=False),
    Column("station_id", Uuid, nullable=False),
    Column("phase", String(16), nullable=False),
)

# The visits a batch touches, as they were before it and as they are after it (no visit:
# NULL): what the coverage's plan rows are moved by (`plans.count_visits`).
TMP_VISIT = _temporary(
    "tmp_finding_visit",
    Column("observer_id", Uuid, primary_key=True),
    Column("station_id", Uuid, primary_key=True),
    Column("phase", String(16), primary_key=True),
    Column("was_last", UTCDateTime, nullable=True),
    Column("now_last", UTCDateTime, nullable=True),
)

# PostgreSQL settings for a fold's transaction (`_ensure_temp_tables` says why).
FOLD_SETTINGS = {"work_mem": "128MB", "random_page_cost": "1.1", "enable_sort": "off"}

TMP_TABLES = (
    TMP_VISIT,
    TMP_SIGN,
    TMP_BEFORE,
    TMP_PER_VALUE,
    TMP_LEAF,
    TMP_COUNT_STATIONS,
    TMP_COUNT,
    TMP_COUNT_LEAF,
    TMP_REVIEW,
)


def emissions(src: Any) -> Any:
    """Tally rows of the checklists in `src` (checklist_id, sign, mission_id, station_id,
    phase): per checklist a `_` row in its phase and one in phase `all` (so
    that stations seen in several phases count once); per answer the answer itself (closed
    questions) or `#` with its number (count questions), and `*` for an answered question.
    Each source is read once: a two-row `copies` table doubles the rows where needed.

    The full recompute (`questions.recompute`) counts from these rows. The fold computes the
    same figures its own way (`_rows_of`, summed with what each station held before), and
    the tests hold the two equal."""
    copies = _copies()
    first = copies.c.k == 0
    checklist_rows = select(
        src.c.mission_id,
        src.c.station_id,
        case((first, src.c.phase), else_=literal_column("'all'")).label("phase"),
        literal_column("'_'").label("question_code"),
        literal_column("'_'").label("value"),
        src.c.sign,
        literal_column("0").label("number"),
        literal_column("0").label("crit"),
    ).select_from(src.join(copies, true()))
    value, counted = _answer_values(first)
    answer_rows = (
        select(
            src.c.mission_id,
            src.c.station_id,
            src.c.phase,
            AN.c.question_code,
            value,
            src.c.sign,
            case((and_(first, AN.c.kind == "number"), func.coalesce(AN.c.number, 0)), else_=0),
            case((and_(first, AN.c.critical), 1), else_=0),
        )
        .select_from(src.join(AN, AN.c.checklist_id == src.c.checklist_id).join(copies, true()))
        .where(counted)
    )
    return union_all(checklist_rows, answer_rows)


def _ensure_temp_tables(session: Session) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # For this transaction only: group hundreds of thousands of delta rows in memory
        # rather than on disk; probe the answers of a batch by index (they are cached)
        # rather than scan them all; hash every grouping, because the planner guesses a
        # seventh of the groups the answers make and then sorted 100,000 rows of text keys
        # (half a second in a fold of 2,000 checklists). (JIT is off for every session,
        # api.db: it compiled for about 60 ms in every fold, a tenth of a fold of 500.)
        session.execute(
            select(*(func.set_config(name, value, True) for name, value in FOLD_SETTINGS.items()))
        )
    for table in TMP_TABLES:
        table.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        # TRUNCATE, not DELETE: a temporary table lives as long as its pooled connection and
        # no autovacuum ever visits it, so deleted rows would pile up fold after fold (after
        # one large fold, clearing a hundred rows took a third of a second).
        session.execute(text(f"TRUNCATE {', '.join(t.name for t in TMP_TABLES)}"))
    else:
        for table in TMP_TABLES:
            session.execute(delete(table))


def _untune(session: Session) -> None:
    """Back to the server's settings for the rest of a transaction that was not a fold's
    (a station import moving stations): `_ensure_temp_tables` tuned them for the fold."""
    if session.get_bind().dialect.name == "postgresql":
        for name in FOLD_SETTINGS:
            session.execute(text(f"SET LOCAL {name} TO DEFAULT"))


def _lock(session: Session) -> bool:
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.scalar(select(func.pg_try_advisory_xact_lock(literal(FOLD_LOCK_KEY)))))
    # SQLite: the first write takes the database's single write lock for the transaction.
    insert_ignore(session, FF, [{"id": 1, "last_change_id": 0, "seen_change_id": 0}], ["id"])
    session.execute(update(FF).where(FF.c.id == 1).values(folded_at=utcnow()))
    return True


def _snapshot(session: Session, edge: str) -> int:
    """xmin or xmax of the current PostgreSQL snapshot, as a 64-bit transaction id."""
    fn = getattr(func, f"pg_snapshot_{edge}")(func.pg_current_snapshot())
    return int(session.scalar(select(cast(cast(fn, String), BigInteger))) or 0)


def _in_flight_before(session: Session, xmax: int) -> bool:
    """Is a transaction of this database that began before `xmax` still running?

    Only this database's sessions matter (an intake transaction holding an outbox id is
    one of them); the cluster-wide snapshot xmin would also wait for other databases.
    pg_stat_activity shows 32-bit xids: compared within one epoch, which at worst makes
    the cursor wait for GAP_GRACE_S once every four billion transactions.
    """
    low = xmax & 0xFFFFFFFF
    return bool(
        session.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
                " AND backend_xid::text::bigint < :low)"
            ),
            {"low": low},
        )
    )


def _window(session: Session, last: int, seen: int) -> tuple[int, int, int, bool] | None:
    """(highest id to look at, new cursor, how many new, more to come) for the next batch.

    A missing id below a visible one belongs to a transaction that was in flight (or was
    rolled back) when we looked. The first time a gap is seen, the snapshot's xmax is
    noted; once no transaction that began before it is running, an id still missing can
    never appear, and the cursor moves over it. Changes past a gap that were folded
    already are looked at again (a no-op) along with the new ones.
    """
    limit = max(0, seen - last) + BATCH
    rows = session.execute(
        select(CHG.c.id, CHG.c.created_at).where(CHG.c.id > last).order_by(CHG.c.id).limit(limit)
    ).all()
    if not rows:
        return None
    hi = rows[-1].id
    fresh = sum(1 for r in rows if r.id > seen)
    if session.get_bind().dialect.name != "postgresql":
        return hi, hi, fresh, len(rows) == limit  # one writer at a time: ids in order
    gap = session.execute(select(FF.c.gap_xmax, FF.c.gap_hi).where(FF.c.id == 1)).one()
    settled = gap.gap_xmax is not None and not _in_flight_before(session, gap.gap_xmax)
    old = utcnow() - timedelta(seconds=GAP_GRACE_S)
    cursor = last
    for row in rows:
        if row.id != cursor + 1 and not (
            (settled and row.id <= gap.gap_hi) or row.created_at < old
        ):
            break  # a lower id may still be committing: look at it again next time
        cursor = row.id
    if cursor == hi:
        values: dict[str, Any] = {"gap_xmax": None, "gap_hi": None}
    elif settled or gap.gap_xmax is None:
        values = {"gap_xmax": _snapshot(session, "xmax"), "gap_hi": hi}
    else:
        values = {}
    if values:
        session.execute(update(FF).where(FF.c.id == 1).values(**values))
    return hi, cursor, fresh, len(rows) == limit


@dataclass(slots=True)
class FoldResult:
    folded: bool  # False when another process held the lock
    changes: int = 0
    checklists: int = 0
    more: bool = False  # stopped at `limit` with changes still pending


def fold(session: Session, limit: int = FOLD_LIMIT) -> FoldResult:
    """Fold pending changes into the tallies (in the caller's transaction), up to about
    `limit` of them: after a bulk load the rest are left to the next transaction, since
    a tally row updated again and again in one transaction leaves dead versions that only
    a vacuum after the commit can clear (one transaction over a million preloaded
    checklists slowed to a crawl)."""
    if not _lock(session):
        return FoldResult(folded=False)
    if session.get_bind().dialect.name == "postgresql":
        # Its own timeout for this transaction: the requests' (30 s) once cancelled a fold
        # that had fallen behind at a million checklists, and it started over.
        timeout = str(get_settings().db_fold_statement_timeout_ms)
        session.execute(select(func.set_config("statement_timeout", timeout, True)))
    insert_ignore(session, FF, [{"id": 1, "last_change_id": 0, "seen_change_id": 0}], ["id"])
    _uncounted_critical(session)
    _uncounted_incidents(session)
    _uncounted_counting(session)
    plans.count_uncounted_missions(session)
    plans.count_replanned(session)
    state = session.execute(select(FF.c.last_change_id, FF.c.seen_change_id)).one()
    last, seen = state.last_change_id, state.seen_change_id
    _uncounted_arrivals(session, last)
    result = FoldResult(folded=True)
    while True:
        window = _window(session, last, seen)
        if window is None:
            break
        hi, cursor, n, more = window
        result.checklists += _fold_window(session, last, hi, seen)
        _count_arrivals(session, last, cursor, seen)
        _analyze_when_grown(session, result.checklists)
        result.changes += n
        seen = max(seen, hi)
        session.execute(
            update(FF)
            .where(FF.c.id == 1)
            .values(last_change_id=cursor, seen_change_id=seen, folded_at=utcnow())
        )
        if not more:
            break
        if result.changes >= limit:
            result.more = True
            break
        last = cursor
    return result


def _fold_window(session: Session, lo: int, hi: int, seen: int) -> int:
    _ensure_temp_tables(session)
    changed = select(CHG.c.checklist_id).where(CHG.c.id > lo, CHG.c.id <= hi)
    applied = exists(select(FA.c.checklist_id).where(FA.c.checklist_id == CL.c.id))
    now_counts = counts(CL)
    session.execute(
        TMP_SIGN.insert().from_select(
            SIGNED,
            select(
                CL.c.id,
                case((now_counts, 1), else_=-1),
                CL.c.mission_id,
                CL.c.station_id,
                CL.c.phase,
                CL.c.observer_id,
            ).where(
                CL.c.id.in_(changed),
                or_(and_(now_counts, not_(applied)), and_(not_(now_counts), applied)),
            ),
        )
    )
    signed = session.scalar(select(func.count()).select_from(TMP_SIGN)) or 0
    if signed:
        _analyze(session, TMP_SIGN)
    _reviewed(session, changed)
    counted = _counting_stations(session)
    if signed:
        _apply_signed(session)
    _review_states(session)
    if counted:
        counted()
    _bump_versions(session, seen, hi)
    return signed


@contextmanager
def moving_stations(
    session: Session, mission_id: Any, station_ids: Sequence[Any]
) -> Iterator[None]:
    """Around a change of these stations' places: the tallies of every place count a station
    where it was when its checklists were folded, so its applied checklists are taken out
    (where they are) before the move, and recorded again after it, for the next fold to
    put them in where they are now. The views show the station's checklists again once
    that fold has run. The arrivals per hour, counted by region as they came, are all
    counted again by that fold if a station with checklists changed region.

    Waits for a fold that is running (its lock), and holds the lock until the move commits,
    before it looks for the stations' checklists: a checklist that arrives at a station with
    none meanwhile is folded after the move, where the station is now. (Looking first, a
    fold in between put such a checklist in at the old place, and it stayed counted there.)"""
    if not station_ids:
        yield
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(literal(FOLD_LOCK_KEY))))
    parts = in_parts(station_ids)
    observed = [
        sid
        for part in parts
        for sid in session.scalars(
            select(CL.c.station_id).where(CL.c.station_id.in_(part)).distinct()
        )
    ]
    if not observed:
        yield
        return
    regions = _regions(session, observed)
    _ensure_temp_tables(session)
    for part in parts:
        of_stations = and_(FA.c.mission_id == mission_id, FA.c.station_id.in_(part))
        session.execute(
            TMP_SIGN.insert().from_select(SIGNED, _applied_signed(-1).where(of_stations))
        )
    # Recorded again for the next fold (it cannot run before this transaction commits).
    if changes.record_selected(session, mission_id, select(TMP_SIGN.c.checklist_id)):
        _analyze(session, TMP_SIGN)
        counted = _counting_stations(session)
        _apply_signed(session)
        if counted:
            counted()
    _untune(session)
    yield
    if _regions(session, observed) != regions:
        session.execute(delete(FAR).where(FAR.c.mission_id == mission_id))
        session.execute(
            update(FS).where(FS.c.mission_id == mission_id).values(arrivals_counted=None)
        )
    bump_versions(session, [mission_id])


def _regions(session: Session, station_ids: list[Any]) -> dict[Any, Any]:
    """The region of each of these stations."""
    found: dict[Any, Any] = {}
    for part in in_parts(station_ids):
        rows = session.execute(select(ST.c.id, ST.c.region_id).where(ST.c.id.in_(part)))
        found.update((station_id, region_id) for station_id, region_id in rows)
    return found


def _reviewed(session: Session, changed: Any) -> None:
    """The applied checklists of the batch whose review state has changed (TMP_REVIEW), with
    their new state, read in one statement: on PostgreSQL a review committed after it is
    left to the next batch whole, never copied without its counting figures moving."""
    session.execute(
        TMP_REVIEW.insert().from_select(
            ["checklist_id", "review_state", "mission_id", "station_id", "phase"],
            select(
                FA.c.checklist_id, CL.c.review_state, FA.c.mission_id, FA.c.station_id, FA.c.phase
            )
            .select_from(FA.join(CL, CL.c.id == FA.c.checklist_id))
            .where(FA.c.checklist_id.in_(changed), FA.c.review_state != CL.c.review_state),
        )
    )


def _counting_stations(session: Session) -> Callable[[], None] | None:
    """The stations whose counting reports this batch changes (into TMP_COUNT_STATIONS):
    a closing checklist arriving or leaving, or one whose review state changes (the totals
    prefer a verified report). Their counting figures are taken out of the counting
    view's tallies now, before the batch is applied; the function returned adds them back
    as they are once it is (None: the batch changes no counting report)."""
    from api.services.findings import counting  # it reads the questions, which import this

    review_changed = select(TMP_REVIEW.c.station_id, TMP_REVIEW.c.mission_id).where(
        TMP_REVIEW.c.phase == "closing"
    )
    stations = union(
        select(TMP_SIGN.c.station_id, TMP_SIGN.c.mission_id).where(TMP_SIGN.c.phase == "closing"),
        review_changed,
    ).subquery("counting_stations")
    session.execute(
        TMP_COUNT_STATIONS.insert().from_select(
            ["station_id", "mission_id"], select(stations.c.station_id, stations.c.mission_id)
        )
    )
    missions = session.scalars(select(TMP_COUNT_STATIONS.c.mission_id).distinct()).all()
    if not missions:
        return None
    plans = [counting.plan(session, mission_id) for mission_id in missions]
    for plan in plans:
        counting.take_out(session, plan, TMP_COUNT_STATIONS, TMP_COUNT)

    def put_back() -> None:
        for plan in plans:
            counting.put_in(session, plan, TMP_COUNT_STATIONS, TMP_COUNT)
        _add_counts_to_nodes(session)

    return put_back


def _add_counts_to_nodes(session: Session) -> None:
    """Add the counting figures' changes in TMP_COUNT at every node above their stations."""
    _add_to_nodes(
        session,
        TMP_COUNT,
        target=FCNT,
        keys=("measure",),
        columns=("amount",),
        leaf=TMP_COUNT_LEAF,
    )


# What finding_applied copies from each checklist for the views (`answers` it makes).
APPLIED_FROM_CHECKLIST = (
    "observer_id",
    "template_id",
    "observed_at",
    "observed_utc_offset_min",
    "received_at",
    "review_state",
)


def answers_of(session: Session, checklist_id: Any, phase: Any) -> Any:
    """What the views read of a checklist's answers, as one JSON object by question code,
    made once when the fold applies it: a closing checklist's numbers (the protocol
    figures, which the counting view would otherwise pivot from the answers of every
    closing checklist), an incident report's first answers (type, source, time,
    description); NULL in other phases or without such answers."""
    by_code = object_agg(session)

    def of(value: Any, which: Any) -> Any:
        return (
            select(case((func.count() > 0, by_code(AN.c.question_code, value))))
            .where(AN.c.checklist_id == checklist_id, which)
            .scalar_subquery()
        )

    return case(
        (phase == "closing", of(AN.c.number, AN.c.number.is_not(None))),
        (phase == "incident", of(AN.c.value, AN.c.position == 0)),
    )


def _review_states(session: Session) -> None:
    """A review that leaves a checklist counting (verified, has issues) changes only its
    state: copied to its row (as `_reviewed` read it), which the counting view ranks
    reports by."""
    session.execute(
        update(FA)
        .where(FA.c.checklist_id.in_(select(TMP_REVIEW.c.checklist_id)))
        .values(
            review_state=select(TMP_REVIEW.c.review_state)
            .where(TMP_REVIEW.c.checklist_id == FA.c.checklist_id)
            .scalar_subquery()
        )
    )


def _visits(session: Session) -> None:
    """Keep the visits (observer, station, phase, and the same pair in any phase: phase
    `all`, which coverage reads without a phase filter) of the batch's checklists: a visit
    that only gains checklists adds them and keeps the later arrival; one that loses a
    checklist is counted again from finding_applied (its latest arrival may have left)."""
    pair = (TMP_SIGN.c.observer_id, TMP_SIGN.c.station_id)
    every: Any = literal("all")
    leaving = [
        select(*pair, TMP_SIGN.c.phase).where(TMP_SIGN.c.sign == -1),
        select(*pair, every).where(TMP_SIGN.c.sign == -1),
    ]
    recount = union_all(*leaving).subquery("recount")
    keys = (FV.c.observer_id, FV.c.station_id, FV.c.phase)
    touched = union(select(*pair, TMP_SIGN.c.phase), select(*pair, every)).subquery("touched")
    session.execute(
        TMP_VISIT.insert().from_select(
            ["observer_id", "station_id", "phase", "was_last"],
            select(*touched.c, FV.c.last_received_at).select_from(
                touched.outerjoin(FV, tuple_(*keys) == tuple_(*touched.c))
            ),
        )
    )
    session.execute(delete(FV).where(tuple_(*keys).in_(select(recount))))
    columns = ["observer_id", "station_id", "phase", "mission_id", "checklists", "last_received_at"]
    counted = (func.count(), func.max(FA.c.received_at))
    applied = (FA.c.observer_id, FA.c.station_id)
    for phase in (FA.c.phase, every):
        session.execute(
            FV.insert().from_select(
                columns,
                select(*applied, phase, FA.c.mission_id, *counted)
                .where(tuple_(*applied, phase).in_(select(recount)))
                .group_by(*applied, phase, FA.c.mission_id),
            )
        )
    arriving = TMP_SIGN.join(FA, FA.c.checklist_id == TMP_SIGN.c.checklist_id)
    for phase in (TMP_SIGN.c.phase, every):
        stmt = dialect_insert(session, FV).from_select(
            columns,
            select(*pair, phase, TMP_SIGN.c.mission_id, *counted)
            .select_from(arriving)
            .where(tuple_(*pair, phase).not_in(select(recount)))
            .group_by(*pair, phase, TMP_SIGN.c.mission_id),
        )
        later = stmt.excluded.last_received_at
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["observer_id", "station_id", "phase"],
                set_={
                    "checklists": FV.c.checklists + stmt.excluded.checklists,
                    "last_received_at": case(
                        (later > FV.c.last_received_at, later), else_=FV.c.last_received_at
                    ),
                },
            )
        )
    now = select(FV.c.last_received_at).where(tuple_(*keys) == tuple_(*TMP_VISIT.primary_key))
    session.execute(update(TMP_VISIT).values(now_last=now.scalar_subquery()))
    _analyze(session, TMP_VISIT)
    plans.count_visits(session, TMP_VISIT)


def _apply_signed(session: Session) -> None:
    # Before this batch: how many counting checklists of the same station hold each value.
    # A station counts for a value while at least one of them does. Answers are counted
    # within a phase, and what the station's checklists of a phase hold is kept in
    # finding_held from its HELD_FROM-th checklist on; a station and phase without its row
    # there (fewer checklists, or none folded since the upgrade that added the table) has
    # its earlier checklists read again, answer by answer. The phase
    # `all` row (checklists of any phase) is a count of the station's entries in
    # finding_applied, which needs no answer at all. Materialised and analysed, so that the
    # planner knows how many there are.
    touched = _touched()
    unheld = ~_held_row(touched.c.station_id, touched.c.phase)
    session.execute(
        TMP_BEFORE.insert().from_select(
            SIGNED,
            _applied_signed(1)
            .select_from(
                FA.join(
                    touched,
                    and_(touched.c.station_id == FA.c.station_id, touched.c.phase == FA.c.phase),
                )
            )
            .where(unheld),
        )
    )
    _analyze(session, TMP_BEFORE)
    # Not analysed: its size on disk tells the planner enough for the joins that read it
    # (an ANALYZE took 0.1 s of a fold of 1,000).
    session.execute(
        TMP_PER_VALUE.insert().from_select(list(TMP_PER_VALUE.c.keys()), _per_value(session))
    )
    _add_to_nodes(session, _per_station())
    _keep_held(session)

    plus = TMP_SIGN.c.sign == 1
    session.execute(
        FA.insert().from_select(
            [
                "checklist_id",
                "mission_id",
                "station_id",
                "phase",
                *APPLIED_FROM_CHECKLIST,
                "answers",
            ],
            select(
                TMP_SIGN.c.checklist_id,
                TMP_SIGN.c.mission_id,
                TMP_SIGN.c.station_id,
                TMP_SIGN.c.phase,
                *[CL.c[name] for name in APPLIED_FROM_CHECKLIST],
                answers_of(session, TMP_SIGN.c.checklist_id, TMP_SIGN.c.phase),
            )
            .select_from(TMP_SIGN.join(CL, CL.c.id == TMP_SIGN.c.checklist_id))
            .where(plus),
        )
    )
    minus = select(TMP_SIGN.c.checklist_id).where(TMP_SIGN.c.sign == -1)
    _incidents(session, minus)  # while the leaving reports' rows are still there
    session.execute(delete(FA).where(FA.c.checklist_id.in_(minus)))
    _visits(session)
    session.execute(delete(FC).where(FC.c.checklist_id.in_(minus)))
    session.execute(
        FC.insert().from_select(
            [
                "checklist_id",
                "question_code",
                "position",
                "mission_id",
                "value",
                "station_id",
                "phase",
                "observed_at",
            ],
            select(
                AN.c.checklist_id,
                AN.c.question_code,
                AN.c.position,
                TMP_SIGN.c.mission_id,
                AN.c.value,
                TMP_SIGN.c.station_id,
                TMP_SIGN.c.phase,
                CL.c.observed_at,
            )
            .select_from(
                TMP_SIGN.join(AN, AN.c.checklist_id == TMP_SIGN.c.checklist_id).join(
                    CL, CL.c.id == TMP_SIGN.c.checklist_id
                )
            )
            .where(plus, AN.c.critical.is_(True)),
        )
    )


def _incidents(session: Session, minus: Any) -> None:
    """Count the batch's incident reports into `finding_incident` (`_count_incidents`).
    Called with the reports that arrive already in `finding_applied` and those that leave
    not yet deleted from it (`minus`)."""
    missions = session.execute(
        select(TMP_SIGN.c.mission_id, FS.c.incident_roles)
        .select_from(TMP_SIGN.outerjoin(FS, FS.c.mission_id == TMP_SIGN.c.mission_id))
        .where(TMP_SIGN.c.phase == "incident")
        .distinct()
    ).all()
    _count_incidents(session, missions, minus)


def _arrivals_of(session: Session, source: Any, *where: Any, weight: int = 1) -> Any:
    """(mission, region, UTC hour, phase, checklists × `weight`) of the new checklists
    (first versions) in `source`, a join with the checklists, selected by `where`."""
    keys = (CL.c.mission_id, ST.c.region_id, utc_hour(session, CL.c.received_at), CL.c.phase)
    return (
        select(*keys, (func.count() * weight).label("checklists"))
        .select_from(source.join(ST, ST.c.id == CL.c.station_id))
        .where(CL.c.version == 1, *where)
        .group_by(*keys)
    )


def _stored(changes_from: Any = CHG) -> Any:
    """The checklists of `stored` outbox rows (each checklist's version has one)."""
    return changes_from.join(CL, CL.c.id == CHG.c.checklist_id)


def _add_arrivals(session: Session, rows: Any) -> None:
    """Add (mission, region, hour, phase, checklists) rows to `finding_arrival`."""
    stmt = dialect_insert(session, FAR).from_select(
        ["mission_id", "region_id", "hour", "phase", "checklists"], rows
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["mission_id", "region_id", "hour", "phase"],
            set_={"checklists": FAR.c.checklists + stmt.excluded.checklists},
        )
    )


def _count_arrivals(session: Session, last: int, cursor: int, seen: int) -> None:
    """Count the checklists whose `stored` outbox rows the cursor has just passed (ids in
    `last`..`cursor`) as arrivals, for the missions whose arrivals are counted (or new to
    the fold). The cursor passes each id once, so each arrives once; a change past a gap
    that is looked at again is counted only when the cursor passes it. Such changes (ids
    up to `seen`, looked at by an earlier fold, which moved their missions' versions
    then) move their missions' versions again: a view computed meanwhile lacks them."""
    if cursor <= last:
        return
    rows = _arrivals_of(
        session,
        _stored(CHG.outerjoin(FS, FS.c.mission_id == CHG.c.mission_id)),
        CHG.c.id > last,
        CHG.c.id <= cursor,
        CHG.c.kind == changes.STORED,
        or_(FS.c.mission_id.is_(None), FS.c.arrivals_counted.is_(True)),
    )
    _add_arrivals(session, rows)
    if last < min(cursor, seen):
        earlier = select(CHG.c.mission_id).where(
            CHG.c.id > last, CHG.c.id <= min(cursor, seen), CHG.c.kind == changes.STORED
        )
        bump_versions(session, list(session.scalars(earlier.distinct())))


def _uncounted_arrivals(session: Session, cursor: int) -> None:
    """Count afresh the arrivals of the missions that are not counted (after migration
    0025, a rebuild, or a station moved to another region): every first version of their
    checklists, but those whose outbox row the cursor has yet to pass (`_count_arrivals`
    adds those as it does)."""
    missions = session.scalars(
        select(FS.c.mission_id).where(FS.c.arrivals_counted.is_not(True))
    ).all()
    for mission_id in missions:
        session.execute(delete(FAR).where(FAR.c.mission_id == mission_id))
        every = _arrivals_of(session, CL, CL.c.mission_id == mission_id)
        pending = _arrivals_of(
            session,
            _stored(),
            CHG.c.mission_id == mission_id,
            CHG.c.id > cursor,
            CHG.c.kind == changes.STORED,
            weight=-1,
        )
        both = union_all(every, pending).subquery("arrivals")
        keys, checklists = both.c[:4], func.sum(both.c.checklists)
        _add_arrivals(session, select(*keys, checklists).group_by(*keys).having(checklists != 0))
        session.execute(
            update(FS).where(FS.c.mission_id == mission_id).values(arrivals_counted=True)
        )
        # Coverage counted them from the checklists until now, those past the cursor too.
        bump_versions(session, [mission_id])


def _per_station_row(*columns: Any) -> list[Any]:
    """Columns labelled as `_add_to_nodes` reads its per-station rows."""
    names = ("station_id", "phase", "question_code", "value", *TALLY_COLUMNS)
    return [c.label(n) for c, n in zip(columns, names, strict=True)]


def _uncounted_critical(session: Session) -> None:
    """Add the critical view's rows (`_critical_rows`) for the missions folded before the
    tallies kept them (migration 0018), counted from finding_critical."""
    missions = session.scalars(
        select(FS.c.mission_id).where(FS.c.critical_counted.is_not(True))
    ).all()
    for mission_id in missions:
        _ensure_temp_tables(session)
        session.execute(delete(FT).where(FT.c.mission_id == mission_id, critical_view_rows()))
        every: Any = literal_column("'all'")
        mark: Any = literal(CRITICAL_ANY)
        checklists = (
            select(FC.c.checklist_id, FC.c.station_id, FC.c.phase)
            .where(FC.c.mission_id == mission_id)
            .distinct()
            .subquery("critical_checklists")
        )
        n: Any = func.count()
        one: Any = literal_column("1")
        zero: Any = literal_column("0")
        answer = (FC.c.station_id, FC.c.question_code, FC.c.value)
        per_station = union_all(
            select(*_per_station_row(FC.c.station_id, every, *answer[1:], n, one, zero, n))
            .where(FC.c.mission_id == mission_id)
            .group_by(*answer),
            select(*_per_station_row(*checklists.c[1:], mark, mark, n, one, zero, zero)).group_by(
                *checklists.c[1:]
            ),
            select(
                *_per_station_row(checklists.c.station_id, every, mark, mark, n, one, zero, zero)
            ).group_by(checklists.c.station_id),
        ).subquery("critical_per_station")
        _add_to_nodes(session, per_station)
        session.execute(
            update(FS).where(FS.c.mission_id == mission_id).values(critical_counted=True)
        )


def _uncounted_counting(session: Session) -> None:
    """Count the counting view's figures of the missions whose applied counting reports
    are not counted (after migration 0022 or a rebuild, once their protocol or thresholds
    changed: `counting_due`, or were counted by an older release: FIGURES_VERSION) without
    waiting for a new report of theirs."""
    from api.services.findings import counting  # it reads the questions, which import this

    key = FS.c.counting_key
    missions = session.scalars(
        select(FS.c.mission_id).where(
            or_(
                key.is_(None),
                and_(key != counting.NOT_KEPT, not_(key.startswith(counting.KEY_PREFIX))),
            ),
            exists(
                select(FA.c.checklist_id).where(
                    FA.c.mission_id == FS.c.mission_id, FA.c.phase == "closing"
                )
            ),
        )
    ).all()
    if not missions:
        return
    _ensure_temp_tables(session)
    for mission_id in missions:
        counting.put_in(session, counting.plan(session, mission_id), TMP_COUNT_STATIONS, TMP_COUNT)
    _add_counts_to_nodes(session)


def counting_due(session: Session, mission_id: Any) -> None:
    """The mission's templates or settings changed: its views are due again, and if its
    protocol or the checks' thresholds changed, its counting figures are counted again by
    the next fold (the view computes them from the reports meanwhile)."""
    from api.services.findings import counting  # it reads the questions, which import this

    if counting.plan(session, mission_id).recount:
        session.execute(update(FS).where(FS.c.mission_id == mission_id).values(counting_key=None))
    bump_versions(session, [mission_id])


def _uncounted_incidents(session: Session) -> None:
    """Count the missions whose applied incident reports were never counted (after
    migration 0016, or a rebuild) without waiting for a new report of theirs."""
    missions = session.execute(
        select(FS.c.mission_id, FS.c.incident_roles).where(
            FS.c.incident_roles.is_(None),
            exists(
                select(FA.c.checklist_id).where(
                    FA.c.mission_id == FS.c.mission_id, FA.c.phase == "incident"
                )
            ),
        )
    ).all()
    _count_incidents(session, missions, None)


def _count_incidents(session: Session, missions: Sequence[Any], minus: Any | None) -> None:
    """Count incident reports into `finding_incident`, by the type and source questions of
    each mission's forms: the batch's (`TMP_SIGN`), or, for a mission counted so far by
    other questions (none yet, or a form changed since), all of its applied reports but
    those leaving (`minus`), with the questions noted (`finding_state.incident_roles`).
    The incidents view reads the counts only while they are by its mission's questions."""
    # Imported here: the question catalog reads the tallies this module keeps.
    from api.services.findings.questions import catalog, incident_questions, incident_roles_key

    for mission_id, counted_by in missions:
        roles = incident_questions(catalog(session, mission_id, "en"))
        key = incident_roles_key(roles)
        where = [FA.c.mission_id == mission_id, FA.c.phase == "incident"]
        if counted_by == key:
            src: Any = FA.join(TMP_SIGN, TMP_SIGN.c.checklist_id == FA.c.checklist_id)
            weight: Any = TMP_SIGN.c.sign
        else:
            session.execute(delete(FI).where(FI.c.mission_id == mission_id))
            src, weight = FA, literal_column("1")
            if minus is not None:
                where.append(FA.c.checklist_id.not_in(minus))
            stmt = dialect_insert(session, FS).values(
                mission_id=mission_id,
                version=0,
                folded_at=utcnow(),
                incident_roles=key,
            )
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["mission_id"], set_={"incident_roles": key}
                )
            )

        answer = {
            role: func.coalesce(FA.c.answers[roles[role].code].as_string(), literal(""))
            if role in roles
            else literal("")
            for role in ("type", "source")
        }
        keys = [
            FA.c.mission_id,
            ST.c.region_id,
            answer["type"],
            answer["source"],
            func.coalesce(local_hour(session), -1),
        ]
        stmt = dialect_insert(session, FI).from_select(
            ["mission_id", "region_id", "kind", "source", "hour", "reports"],
            select(*keys, func.sum(weight))
            .select_from(src.join(ST, ST.c.id == FA.c.station_id))
            .where(*where)
            .group_by(*keys),
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["mission_id", "region_id", "kind", "source", "hour"],
                set_={"reports": FI.c.reports + stmt.excluded.reports},
            )
        )


ANSWERED = "*"  # the value of the rows counting the checklists that answer a question
# The checklists a station has in a phase before the fold keeps what they hold in a row
# (`_keep_held`) rather than read their answers again with each new one. On the bench
# machine, writing the rows took a fold of 1,000 about 0.18 ms a station and phase, and
# reading a checklist's answers again about 0.045 ms. Keeping every station's row (or
# from the fifth checklist) made folds of 1,000 a tenth to a fifth longer at 150,000
# checklists (a median of four a station in voting); from the tenth, 5 to 15 %. At a
# million (31) the rows made them a third to two thirds shorter.
HELD_FROM = 10


def _copies() -> Any:
    """A two-row table (k = 0, 1): joined to the answers, each answer read once gives two
    rows, its value and its question's ANSWERED row."""
    return union_all(
        select(literal_column("0").label("k")), select(literal_column("1").label("k"))
    ).subquery("copies")


def _answer_values(first: Any) -> tuple[Any, Any]:
    """An answer's value in the tallies, in its two copies (`_copies`, `first` the first),
    and which copies count: the first gives its option (`#` for a number; a time or text
    has none), the second ANSWERED for the answer that says its question was answered (the
    first of a multiple choice, and not "not applicable")."""
    value = case(
        (~first, literal(ANSWERED)),
        (or_(AN.c.kind == "closed", AN.c.value == "na"), AN.c.value),
        else_=literal_column("'#'"),
    )
    counted = or_(
        and_(first, AN.c.kind != "other"), and_(~first, AN.c.position == 0, AN.c.value != "na")
    )
    return value, counted


def _touched() -> Any:
    """The stations and phases of the batch's checklists."""
    return select(TMP_SIGN.c.station_id, TMP_SIGN.c.phase).distinct().subquery("touched")


def _held_row(station_id: Any, phase: Any) -> Any:
    """Does finding_held keep a row for this station and phase?"""
    return exists(select(FH.c.station_id).where(FH.c.station_id == station_id, FH.c.phase == phase))


def _rows_of(src: Table, before: bool) -> list[Any]:
    """Rows of the checklists in `src` to sum per station and value: one per checklist in
    its phase (`_`) and one in phase `all`; per answer its option (`#` for a number; a
    time or text has none), and ANSWERED for the answer that says the question was
    answered (the first of a multiple choice, and not "not applicable"). The earlier
    checklists of the station (`before`) need no `all` row of their own: `_per_value`
    counts those from finding_applied."""
    zero: Any = literal_column("0")
    one: Any = literal_column("1")
    sign = one if before else src.c.sign

    def summed(obs: Any, total: Any, crit: Any) -> list[Any]:
        values = [zero, zero, zero, one] if before else [obs, total, crit, zero]
        return [v.label(c) for v, c in zip(values, PER_VALUE, strict=True)]

    blank: list[Any] = [
        literal_column("'_'").label("question_code"),
        literal_column("'_'").label("value"),
    ]
    phases = [src.c.phase] if before else [src.c.phase, literal_column("'all'")]
    rows = [
        select(src.c.station_id, phase.label("phase"), *blank, *summed(sign, zero, zero))
        for phase in phases
    ]
    copies = _copies()
    first = copies.c.k == 0
    value, counted = _answer_values(first)
    number = and_(first, AN.c.kind == "number")
    rows.append(
        select(
            src.c.station_id,
            src.c.phase,
            AN.c.question_code,
            value,
            *summed(
                sign,
                case((number, sign * func.coalesce(AN.c.number, 0)), else_=0),
                case((and_(first, AN.c.critical), sign), else_=0),
            ),
        )
        .select_from(src.join(AN, AN.c.checklist_id == src.c.checklist_id).join(copies, true()))
        .where(counted)
    )
    return rows


CRITICAL_ANY = "!"  # question and value of the rows counting checklists with a critical answer


def critical_view_rows() -> Any:
    """The tally rows that are the critical view's own (`_critical_rows`), not findings."""
    return or_(
        FT.c.question_code == CRITICAL_ANY, and_(FT.c.phase == "all", FT.c.question_code != "_")
    )


def _critical_rows() -> list[Any]:
    """Rows of the critical answers' own tallies, summed per station and value with the
    rest: each critical answer again in phase `all` (so that a station with the same
    problem in two phases counts once), and each checklist with any critical answer as
    `!` in its phase and in `all`. What the station held before the batch is read from
    finding_critical, which the batch has not changed yet."""
    zero: Any = literal_column("0")
    one: Any = literal_column("1")
    every: Any = literal_column("'all'")
    mark: Any = literal(CRITICAL_ANY)
    sign = TMP_SIGN.c.sign
    change = [sign, zero, sign, zero]  # PER_VALUE: d_obs, d_crit
    held = [zero, zero, zero, one]  # PER_VALUE: n0
    touched = select(TMP_SIGN.c.station_id).distinct()
    earlier = (
        select(FC.c.checklist_id, FC.c.station_id, FC.c.phase)
        .where(FC.c.station_id.in_(touched))
        .distinct()
        .subquery("earlier_critical")
    )
    any_critical = exists(
        select(AN.c.checklist_id).where(
            AN.c.checklist_id == TMP_SIGN.c.checklist_id, AN.c.critical.is_(True)
        )
    )
    change_any = [sign, zero, zero, zero]
    return [
        select(TMP_SIGN.c.station_id, every, AN.c.question_code, AN.c.value, *change)
        .select_from(TMP_SIGN.join(AN, AN.c.checklist_id == TMP_SIGN.c.checklist_id))
        .where(AN.c.critical.is_(True)),
        select(FC.c.station_id, every, FC.c.question_code, FC.c.value, *held).where(
            FC.c.station_id.in_(touched)
        ),
        *[
            select(TMP_SIGN.c.station_id, phase, mark, mark, *change_any).where(any_critical)
            for phase in (TMP_SIGN.c.phase, every)
        ],
        *[
            select(earlier.c.station_id, phase, mark, mark, *held)
            for phase in (earlier.c.phase, every)
        ],
    ]


def _held_rows(session: Session) -> Any:
    """What finding_held says the batch's stations held in its phases before it (`n0`), as
    rows to sum per station and value with the batch's own (`_rows_of`)."""
    zero: Any = literal_column("0")
    touched = _touched()
    pg = session.get_bind().dialect.name == "postgresql"
    each = (func.jsonb_each_text if pg else func.json_each)(FH.c.held).table_valued(
        "key", "value", name="held_value"
    )
    key = each.c.key
    colon = (func.strpos if pg else func.instr)(key, ":")
    question, value = func.substr(key, 1, colon - 1), func.substr(key, colon + 1)
    held = cast(each.c.value, BigInteger)
    return select(FH.c.station_id, FH.c.phase, question, value, zero, zero, zero, held).select_from(
        FH.join(
            touched, and_(touched.c.station_id == FH.c.station_id, touched.c.phase == FH.c.phase)
        ).join(each, true())
    )


def _per_value(session: Session) -> Any:
    """Per station, phase, question and value: the batch's change to the tallies and what
    the station held before it (PER_VALUE), into TMP_PER_VALUE."""
    zero: Any = literal_column("0")
    earlier_all = (
        select(
            FA.c.station_id,
            literal_column("'all'"),
            literal_column("'_'"),
            literal_column("'_'"),
            *[func.count() if c == "n0" else zero for c in PER_VALUE],
        )
        .where(FA.c.station_id.in_(select(TMP_SIGN.c.station_id).distinct()))
        .group_by(FA.c.station_id)
    )
    rows = union_all(
        *_rows_of(TMP_SIGN, before=False),
        *_rows_of(TMP_BEFORE, before=True),
        _held_rows(session),
        earlier_all,
        *_critical_rows(),
    ).subquery("rows")
    keys = [rows.c[k] for k in ("station_id", "phase", "question_code", "value")]
    return select(*keys, *[func.sum(rows.c[c]).label(c) for c in PER_VALUE]).group_by(*keys)


def _per_station() -> Any:
    """Per station and value, the batch's change to the tallies, and whether the station
    starts or stops counting for the value: it counts while at least one of its counting
    checklists holds the value (`n0` of them did before the batch)."""
    g = TMP_PER_VALUE
    before, change = g.c.n0, g.c.d_obs
    starts_or_stops = case((before + change > 0, 1), else_=0) - case((before > 0, 1), else_=0)
    return select(
        g.c.station_id,
        g.c.phase,
        g.c.question_code,
        g.c.value,
        g.c.d_obs.label("observations"),
        starts_or_stops.label("stations"),
        g.c.d_total.label("total"),
        g.c.d_crit.label("critical"),
    ).subquery("per_station")


def _keep_held(session: Session) -> None:
    """What each station the batch touched holds in the batch's phases after it, into
    finding_held (`FindingHeld`): the values and answered questions its counting
    checklists hold (none left out), and their number (`_:_`, kept at zero too, so that a
    station and phase that lost every checklist keeps its row). Kept for a station and
    phase once it has HELD_FROM checklists, and from then on."""
    g = TMP_PER_VALUE
    key, n = g.c.question_code + ":" + g.c.value, g.c.n0 + g.c.d_obs
    by_key = object_agg(session)
    kept = _held_row(g.c.station_id, g.c.phase)
    pair = (g.c.station_id, g.c.phase)
    due = select(*pair).where(
        g.c.question_code == "_", g.c.phase != "all", or_(n >= HELD_FROM, kept)
    )
    stmt = dialect_insert(session, FH).from_select(
        ["station_id", "phase", "held"],
        select(*pair, by_key(key, n))
        .where(
            tuple_(*pair).in_(due),
            g.c.question_code != CRITICAL_ANY,
            or_(n > 0, g.c.question_code == "_"),
        )
        .group_by(*pair),
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["station_id", "phase"], set_={"held": stmt.excluded.held}
        )
    )


def _add_to_nodes(
    session: Session,
    ts: Any,
    target: Table = FT,
    keys: Sequence[str] = ("phase", "question_code", "value"),
    columns: Sequence[str] = TALLY_COLUMNS,
    leaf: Table = TMP_LEAF,
) -> None:
    """Add the per-station deltas `ts` (station_id, `keys`, `columns`) to the `target`
    tallies at every node above each station: first summed per place into `leaf` (a few
    thousand rows), then rolled up to the region, in/abroad and the whole mission. The
    findings' per-station rows (about 60 per checklist) are only grouped, so they are not
    stored first: writing them to a temporary table and reading them back made these
    statements cost 5 to 10% more."""
    places = (
        ST.c.mission_id,
        ST.c.location_id,
        ST.c.region_id,
        ST.c.abroad,
        *[ts.c[k] for k in keys],
    )  # the leaf table's key columns, by the same names
    session.execute(
        leaf.insert().from_select(
            [*[c.name for c in places], *columns],
            select(*places, *[func.sum(ts.c[c]) for c in columns])
            .select_from(ts.join(ST, ST.c.id == ts.c.station_id))
            .where(or_(*[ts.c[c] != 0 for c in columns]))
            .group_by(*places),
        )
    )
    lf = leaf
    abroad_node = case(
        (lf.c.abroad.is_(True), literal(NODE_ABROAD, Uuid)), else_=literal(NODE_IN_COUNTRY, Uuid)
    )
    levels: list[tuple[Any, list[Any], Any]] = [
        (literal(NODE_ALL, Uuid), [], None),
        (abroad_node, [lf.c.abroad], None),
        (lf.c.region_id, [lf.c.region_id], None),
        (lf.c.location_id, [lf.c.location_id], lf.c.location_id != lf.c.region_id),
    ]
    group = [lf.c.mission_id, *[lf.c[k] for k in keys]]
    for node, node_group, where in levels:
        query = (
            select(
                lf.c.mission_id,
                node.label("node_id"),
                *[lf.c[k] for k in keys],
                *[func.sum(lf.c[c]).label(c) for c in columns],
            )
            # SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT.
            .where(where if where is not None else lf.c.mission_id.is_not(None))
            .group_by(*group, *node_group)
        )
        stmt = dialect_insert(session, target).from_select(
            ["mission_id", "node_id", *keys, *columns], query
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["mission_id", "node_id", *keys],
            set_={c: target.c[c] + stmt.excluded[c] for c in columns},
        )
        session.execute(stmt)


def _analyze(session: Session, *tables: Table) -> None:
    """ANALYZE on PostgreSQL. Temporary tables have no statistics until analysed; without
    them PostgreSQL picks nested loops over hundreds of thousands of rows."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"ANALYZE {', '.join(t.name for t in tables)}"))


# The fold's own tables that grow with the checklists, which a large fold fills faster
# than autovacuum analyses them.
GROWING = (FA, FC, FV, FH)


def _analyze_when_grown(session: Session, added: int) -> None:
    """ANALYZE the applied rows, critical answers, visits and values held (`GROWING`) once
    this transaction has taken more checklists in or out (`added`) than the planner
    believes `finding_applied` holds (PostgreSQL).

    After a bulk load or a rebuild the statistics say the tables are empty, and a plan made
    for empty tables can compare every applied row with every checklist of a batch: once,
    the first 50,000 checklists of a million took over three minutes instead of about 25 s.
    An ANALYZE sees this transaction's own rows. It runs while a fold's own checklists
    outnumber what the statistics know of: in the first transactions of a fold that starts
    from empty tables, not in a fold of a day's batch, which is small beside the table.
    Its lock on these tables (SHARE UPDATE EXCLUSIVE) lasts until the fold commits: a
    vacuum or analyse of them waits for it."""
    if session.get_bind().dialect.name != "postgresql" or added < ANALYZE_AFTER:
        return
    known = session.scalar(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": FA.name}
    )
    if known is None or added > max(float(known), 0.0):
        _analyze(session, *GROWING)


def _bump_versions(session: Session, seen: int, hi: int) -> None:
    """A new data version for every mission whose findings inputs changed."""
    touched = union_all(
        select(TMP_SIGN.c.mission_id),
        select(CHG.c.mission_id).where(CHG.c.id > seen, CHG.c.id <= hi),
    ).subquery()
    bump_versions(session, [r[0] for r in session.execute(select(touched.c.mission_id).distinct())])


def bump_versions(session: Session, missions: list[Any]) -> None:
    """A new data version for each of these missions: their views are computed again."""
    if not missions:
        return
    now = utcnow()
    stmt = dialect_insert(session, FS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["mission_id"],
        set_={"version": FS.c.version + 1, "folded_at": stmt.excluded.folded_at},
    )
    session.execute(stmt, [{"mission_id": m, "version": 1, "folded_at": now} for m in missions])
    changes.announce(session)  # open consoles hear of the new versions once they commit


@dataclass(frozen=True)
class Progress:
    """How far the findings are behind the checklists, as the database says."""

    lag_s: float  # since the first change not yet looked at was recorded (0 when none)
    folded_s_ago: float | None  # since a fold last folded changes (None: never)


def unfolded_since(mission_id: Any = None) -> Any:
    """The time the first change the fold has not looked at yet was recorded (of this
    mission, an id or a column to correlate with; or of any), NULL when there is none: one
    probe of an index. Past `seen` nothing was looked at; below it only gaps wait, and
    they are folded the moment their transaction commits."""
    seen = select(FF.c.seen_change_id).where(FF.c.id == 1).scalar_subquery()
    first = select(CHG.c.created_at).where(CHG.c.id > func.coalesce(seen, 0))
    if mission_id is not None:
        first = first.where(CHG.c.mission_id == mission_id)
    return first.order_by(CHG.c.id).limit(1).scalar_subquery()


def seconds_behind(since: Any, now: Any) -> float:
    """Seconds from `since` (as `unfolded_since` reads it) to `now`: 0 for None, never
    negative, whatever the clocks of the nodes that stored the changes."""
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


def progress(session: Session) -> Progress:
    """The fold's lag and when it last folded, in one round trip."""
    folded_at = select(FF.c.folded_at).where(FF.c.id == 1).scalar_subquery()
    since, last = session.execute(select(unfolded_since(), folded_at)).one()
    now = utcnow()
    return Progress(
        lag_s=seconds_behind(since, now),
        folded_s_ago=None if last is None else max(0.0, (now - last).total_seconds()),
    )


def fold_lag_s(session: Session) -> float:
    """Seconds since the first change the fold has not looked at yet was recorded (0 when
    none)."""
    return progress(session).lag_s


def rebuild(session: Session) -> FoldResult:
    """Forget every tally and fold the outbox again from the start (after a bug fix, or by
    hand): its first `FOLD_LIMIT` changes here, the rest by the folds that follow."""
    if not _lock(session):  # taken again by fold(): advisory locks nest in a session
        return FoldResult(folded=False)
    for table in (FT, FA, FH, FC, FV, FI, FAR, FCNT, FCR, plans.FOP, plans.FTP, plans.FRP):
        session.execute(delete(table))
    session.execute(
        update(FS).values(
            incident_roles=None,
            arrivals_counted=None,
            critical_counted=True,
            counting_key=None,
            plan_counted=None,
        )
    )
    session.execute(
        update(FF).values(last_change_id=0, seen_change_id=0, gap_xmax=None, gap_hi=None)
    )
    return fold(session)


# The fold's tables whose rows it rewrites in place fold after fold (or, for the counting
# reports, deletes and writes again station by station), which `vacuum_tallies` keeps.
REWRITTEN = (FT, FH, FV, plans.FOP, plans.FTP, FCNT, FCR, FAR)


def vacuum_tallies() -> bool:
    """`VACUUM` the tables the fold rewrites (`REWRITTEN`) on PostgreSQL (False elsewhere):
    every fold rewrites tens of thousands of the tallies' rows at peak, and an update finds
    room for its new row version on the same page (a HOT update, with no index entry to
    add) only once the old versions are vacuumed away. Autovacuum visits a database at
    most once a minute (`autovacuum_naptime`), in which time the peak leaves a million dead
    row versions in a table of some 50,000 live ones: after a vacuum the next fold's tally
    upserts took 40 % less time (`bench/README.md`). The visits (`finding_visit`) too: the
    fold counts a touched visit again by deleting and inserting it, and coverage reads
    every visit of the mission (a million checklists' initial fold left 150,000 of them on
    12,000 pages). So too the plan rows per observer and team, moved by every visit (a
    million checklists left 15,000 observers' rows on 8,000 pages, which coverage's
    missing observers then scanned whole), and the counting figures and reports, written
    again with every counting report (5,000 live figures on 6,000 pages). SKIP_LOCKED:
    when another process is vacuuming a table, there is nothing to add."""
    from api.db import get_engine

    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (SKIP_LOCKED) {', '.join(t.name for t in REWRITTEN)}"))
    return True


def folds_in_background(settings: Settings) -> bool:
    """API processes fold in the background, except under tests or when turned off."""
    return (
        settings.findings_fold_interval_s > 0
        and settings.environment != "test"
        and not settings.findings_fold_elsewhere
    )


def run_once() -> FoldResult:
    """One fold in a transaction of its own (the background folder and reads use this)."""
    from api.db import session_scope

    with session_scope() as session:
        return fold(session)


def progress_now() -> Progress:
    """The fold's `progress`, read in a session of its own (the intake's pacing uses this)."""
    from api.db import session_scope

    with session_scope() as session:
        return progress(session)


class BackgroundFolder:
    """Folds every `interval` seconds in a daemon thread; every API process runs one, and
    the fold lock lets only one of them work at a time. `pollcheck fold` runs the same loop
    in the foreground (`run`), and with `listen` also folds as soon as PostgreSQL announces
    new changes (`api.notify`), at most every `gap` seconds: the findings then wait for
    the fold itself, not for the rest of an interval."""

    def __init__(
        self, interval: float, vacuum_every: float = 0.0, listen: str | None = None
    ) -> None:
        self.interval = interval
        self.vacuum_every = vacuum_every  # seconds between vacuums of the tallies; 0: never
        self.listen = listen  # a libpq address to LISTEN on for changes; None: the interval
        self.gap = min(interval, LISTEN_GAP_S)
        self._vacuumed = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self.run, name="findings-fold", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run(self) -> None:
        """Fold until `stop` is called."""
        if self.listen is not None:
            threading.Thread(target=self._listen, name="findings-fold-listen", daemon=True).start()
        delay = self.interval
        while True:
            self._wake.wait(delay)  # new changes announced, or the interval is over
            if self._stop.is_set():
                return
            self._wake.clear()
            started = time.perf_counter()
            try:
                result = run_once()
            except Exception:  # keep folding after a database hiccup; it is logged
                log.exception("findings fold failed; will retry")
                # One interval's pause, whatever announcements arrive meanwhile, then the
                # next try.
                self._stop.wait(self.interval)
                delay = 0.0
                continue
            took = time.perf_counter() - started
            if result.checklists:
                self._vacuum_when_due()
            # A fold slower than the interval means the findings are behind: go again at
            # once, since a pause would only add to the lag. Quick folds keep the cadence,
            # so that a trickle of checklists does not keep a fold running all the time.
            behind = took > self.interval or result.more
            delay = AGAIN_S if result.changes and behind else self.interval
            if took > 2 * self.interval:  # findings are falling behind the checklists
                log.warning(
                    "findings fold took %.1f s for %d changes (%d checklists in or out)",
                    took,
                    result.changes,
                    result.checklists,
                )
            if self.listen is not None:
                # Let what arrives meanwhile gather into the next fold. (The fold's own
                # announcement of new data versions wakes it once more, to find nothing.)
                self._stop.wait(max(0.0, self.gap - took))

    def _listen(self) -> None:
        """Hold a LISTEN connection (reconnecting when it drops) and wake the fold on
        every announcement of committed changes."""
        import psycopg

        address = self.listen
        assert address is not None  # started only with an address
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    address,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="pollcheck fold listen",
                ) as conn:
                    conn.execute(f"LISTEN {notify.CHANNEL}")
                    self._wake.set()  # whatever was committed while nobody listened
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._wake.set()
            except Exception:
                log.warning("the fold's LISTEN connection failed; folding by interval")
            self._stop.wait(2.0)

    def _vacuum_when_due(self) -> None:
        """Vacuum the tallies after a fold that changed them, at most every `vacuum_every`
        seconds (outside the fold's transaction: VACUUM cannot run inside one)."""
        now = time.monotonic()
        if not self.vacuum_every or now - self._vacuumed < self.vacuum_every:
            return
        self._vacuumed = now
        try:
            vacuum_tallies()
        except Exception:  # the fold goes on; autovacuum remains
            log.exception("vacuum of the findings tallies failed")
