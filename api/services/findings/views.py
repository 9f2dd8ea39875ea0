"""Every findings view goes through here: freshness, the shared cache, data versions, ETags.

A view is computed at most once per data version by whichever API process is asked first;
the result is stored in `finding_cache` so that every other process serves it too. While
data keeps arriving (a new version every second or so), a view is reused for
`findings_cache_s`, or for `findings_cache_cost_factor` times as long as it took to compute
if that is longer (up to `COST_REUSE_MAX_S`): the dashboard's findings take milliseconds
and are reused for a tenth of a second, while a draft statement that takes seconds at
national scale is not computed again on every poll. When a view is due, the one request
that claims it computes it while every other serves the last one (`_claim`). The ETag is a hash of
the body, so an unchanged result always has the same ETag on every process.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from sqlalchemy import bindparam, case, delete, literal, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from api import ratelimit
from api.config import Settings
from api.db import autocommits
from api.errors import NotFound, TooManyRequests
from api.services.findings import counting as counting_service
from api.services.findings import fold as fold_service
from api.services.findings import gate, sections
from api.services.findings import questions as question_service
from api.services.findings.freshness import REPLICA_LAG, lag_seconds
from api.services.findings.scope import SNAPSHOT_MEMO, Filters, Scope, resolve
from api.services.findings.stats import FindingsSettings, read_settings
from api.services.sql import upsert
from models import FindingCache, FindingState, Mission
from models.base import table_of, utcnow
from models.views import (
    CountingSection,
    CoverageSection,
    CriticalSection,
    FindingsSection,
    IncidentsSection,
    MapSection,
    StatementSection,
)

log = logging.getLogger("pollcheck.findings")
FCACHE = table_of(FindingCache)
FS = table_of(FindingState)
MISSION = table_of(Mission)
CACHE_KEEP = timedelta(hours=1)
SWEEP_EVERY_S = 60.0  # how often a process removes the views older than CACHE_KEEP
_last_sweep = [float("-inf")]  # when this process last did (time.monotonic())
COST_REUSE_MAX_S = 60.0  # a slow view is at most a minute behind the data
GZIP_LEVEL = 6  # zlib's default: a 60 KB findings view in about 1 ms, to a tenth of its size


@dataclass(slots=True)
class Context:
    """What every view needs besides the scope."""

    session: Session
    scope: Scope
    config: FindingsSettings
    settings_problems: list[str]
    random_sample: bool
    language: str
    languages: list[str]
    # The statement's sections, from the shared cache when current (`get_view` sets it);
    # None: computed here.
    part: Callable[[str], BaseModel] | None = None

    def questions(self) -> dict[str, question_service.QuestionInfo]:
        return question_service.catalog(self.session, self.scope.mission_id, self.language)

    def tallies(self) -> question_service.Tally:
        return question_service.tallies(self.session, self.scope)


def findings(ctx: Context) -> FindingsSection:
    return question_service.build(ctx.tallies(), ctx.questions(), ctx.config, ctx.random_sample)


def coverage(ctx: Context) -> CoverageSection:
    return sections.coverage(ctx.session, ctx.scope)


def incidents(ctx: Context) -> IncidentsSection:
    return sections.incidents(ctx.session, ctx.scope, ctx.questions())


def critical(ctx: Context) -> CriticalSection:
    return sections.critical(ctx.session, ctx.scope, ctx.questions(), ctx.config)


def counting(ctx: Context) -> CountingSection:
    return counting_service.counting(
        ctx.session,
        ctx.scope,
        ctx.config,
        ctx.random_sample,
        language=ctx.language,
        questions=ctx.questions(),
    )


def station_map(ctx: Context) -> MapSection:
    return sections.station_map(ctx.session, ctx.scope)


S = TypeVar("S", bound=BaseModel)


def _typed(name: str, found: BaseModel, model: type[S]) -> S:
    if not isinstance(found, model):
        raise TypeError(f"the {name} section is a {type(found).__name__}, not {model.__name__}")
    return found


def _section(ctx: Context, name: str, model: type[S]) -> S:
    """One of the statement's sections: the cached view's when `ctx.part` has it."""
    return _typed(name, ctx.part(name) if ctx.part is not None else VIEWS[name](ctx), model)


def statement(ctx: Context) -> StatementSection:
    from api.services.findings import statement as statement_service

    parts = statement_service.Parts(
        findings=_section(ctx, "findings", FindingsSection),
        coverage=_section(ctx, "coverage", CoverageSection),
        incidents=_section(ctx, "incidents", IncidentsSection),
        critical=_section(ctx, "critical", CriticalSection),
        counting=_section(ctx, "counting", CountingSection),
    )
    roles = question_service.statement_questions(ctx.session, ctx.scope.mission_id)
    return statement_service.draft(parts, ctx, roles)


SECTIONS = ("findings", "coverage", "incidents", "critical", "counting")  # the statement's
VIEWS: dict[str, Callable[[Context], BaseModel]] = {
    "findings": findings,
    "coverage": coverage,
    "incidents": incidents,
    "critical": critical,
    "counting": counting,
    "statement": statement,
    "map": station_map,
}
# Each view's section, as the cache's JSON is read back into it.
MODELS: dict[str, type[BaseModel]] = {
    "findings": FindingsSection,
    "coverage": CoverageSection,
    "incidents": IncidentsSection,
    "critical": CriticalSection,
    "counting": CountingSection,
    "statement": StatementSection,
    "map": MapSection,
}
# Each view's shape as this release builds it, part of every cache key: a view cached by a
# release whose models differ (a rolling upgrade, a node not yet restarted) is never read
# back into this release's models, which might refuse it; it is computed again instead.
SHAPES = {
    name: hashlib.sha256(
        orjson.dumps(model.model_json_schema(), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()[:16]
    for name, model in MODELS.items()
}


@dataclass(slots=True)
class View:
    body: bytes
    etag: str
    gzipped: bytes | None = None  # the body compressed once, when it was computed
    replica_lag_s: float | None = None  # how far behind the replica read was (None: primary)
    # How far the findings read were behind the mission's changes when it was served: since
    # the first change the fold had not looked at yet was recorded (0: none waited), or,
    # for a body computed before the newest data version, at least since it was computed.
    findings_lag_s: float | None = None
    # When this body was computed, when the data has moved on since (None: it is current).
    behind_since: datetime | None = None

    def parsed(self) -> dict[str, Any]:
        return dict(orjson.loads(self.body))


def _made(body: bytes) -> View:
    """A freshly computed view, with its ETag and its body compressed for gzip clients."""
    gzipped = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
    return View(body, _etag(body), gzipped)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def ensure_fresh(session: Session, settings: Settings, write: Session | None = None) -> None:
    """Without background folders (tests, one-off tools), fold now when changes are older
    than the allowed lag. With them, or with a `pollcheck fold` process, a read never folds:
    under load that put seconds of folding into a dashboard's request, and the background
    fold is as current."""
    if fold_service.folds_in_background(settings) or settings.findings_fold_elsewhere:
        return
    if fold_service.fold_lag_s(session) > settings.findings_max_lag_s:
        try:
            if write is None:
                fold_service.run_once()
            else:
                # The request's own write session: on SQLite it may already hold the write
                # lock (the token's last-used time), and a second writer would wait on it.
                fold_service.fold(write)
                write.commit()
        except DBAPIError:
            log.exception("findings fold on read failed; serving the tallies as they are")
        # End the read transaction so that the reads below see what the fold committed
        # (SQLite keeps a read snapshot for the whole transaction).
        session.commit()


def on_replica(settings: Settings, write: Session | None) -> bool:
    """Do this request's reads go to a streaming replica, with `write` on the primary?"""
    return settings.read_database_url is not None and write is not None


def _mission_read(replica_lag: bool) -> Any:
    """The statement of `_mission`, built once: every view request, a 304 included, runs it,
    and building it afresh cost more Python than the database spends on it."""
    data_version = select(FS.c.version).where(FS.c.mission_id == MISSION.c.id).scalar_subquery()
    return select(
        MISSION.c.settings,
        MISSION.c.sampling,
        MISSION.c.languages,
        data_version.label("version"),
        fold_service.unfolded_since(MISSION.c.id).label("unfolded_since"),
        (REPLICA_LAG if replica_lag else literal(None)).label("lag"),
    ).where(MISSION.c.id == bindparam("mission_id", type_=MISSION.c.id.type))


MISSION_READ = {lag: _mission_read(lag) for lag in (False, True)}


def _mission(session: Session, mission_id: uuid.UUID, replica: bool = False) -> Any:
    """The mission's settings, sampling, languages and data version, in one round trip,
    with when the first of its changes not yet folded was stored (`unfolded_since`); on a
    replica, how far behind it is too (`lag`)."""
    lag = replica and session.get_bind().dialect.name == "postgresql"
    mission = session.execute(MISSION_READ[lag], {"mission_id": mission_id}).first()
    if mission is None:
        raise NotFound(f"no mission {mission_id}", code="mission_not_found")
    return mission


def _context(
    session: Session, mission: Any, mission_id: uuid.UUID, filters: Filters, language: str | None
) -> Context:
    """What a view is computed from; an unknown place or team in the filters is a 404."""
    config, problems = read_settings(mission.settings)
    languages = list(mission.languages or ["en"])
    return Context(
        session=session,
        scope=resolve(session, mission_id, filters),
        config=config,
        settings_problems=problems,
        random_sample=mission.sampling == "random",
        language=language or languages[0],
        languages=languages,
    )


def compute(
    session: Session,
    mission_id: uuid.UUID,
    name: str,
    filters: Filters,
    language: str | None = None,
) -> BaseModel:
    """One view's section computed afresh, past the cache (`make bench` times this)."""
    mission = _mission(session, mission_id)
    ctx = _context(session, mission, mission_id, filters, language)
    with one_snapshot(session):
        return VIEWS[name](ctx)


def compute_as(
    model: type[S],
    session: Session,
    mission_id: uuid.UUID,
    name: str,
    filters: Filters,
    language: str | None = None,
) -> S:
    """`compute`, for a caller that reads the section's fields."""
    return _typed(name, compute(session, mission_id, name, filters, language), model)


def get_view(
    session: Session,
    settings: Settings,
    mission_id: uuid.UUID,
    name: str,
    filters: Filters,
    language: str | None,
    write: Session | None = None,
    known: list[str] | None = None,
    who: uuid.UUID | None = None,
) -> View:
    """The view as JSON bytes with its ETag, from the shared cache when it is current.
    `known`: the ETags the client holds (`If-None-Match`); when the cached view is one of
    them, its body is not even read (the answer is a 304), and the View's body is empty.
    `who`: the credential asking, whose allowance of fresh computes a view not in the
    cache spends (429 past it).

    With a streaming replica (`read_database_url`) the view is computed from the replica,
    while the shared cache is read and written on the primary (`write`): every node then
    agrees on the newest view, and none goes backwards. A node whose replica is behind the
    cached view serves the cached one rather than compute an older one, and a cached view
    is only ever replaced by one of the same or a newer data version.

    The View says how far behind the replica (`replica_lag_s`) and the findings
    (`findings_lag_s`) were as it was served: the body, cached and shared, says when it
    was computed, not how far behind the data then was."""
    filters = filters.whole_minutes()
    ensure_fresh(session, settings, write)
    replica = on_replica(settings, write)
    cache = write if replica and write is not None else session
    mission = _mission(session, mission_id, replica)
    lag = lag_seconds(mission.lag)
    view = _view(
        session, cache, settings, mission, lag, mission_id, name, filters, language, known, who
    )
    now = utcnow()
    view.replica_lag_s = lag
    view.findings_lag_s = max(
        fold_service.seconds_behind(mission.unfolded_since, now),
        fold_service.seconds_behind(view.behind_since, now),
    )
    return view


def _view(
    session: Session,
    cache: Session,
    settings: Settings,
    mission: Any,
    lag: float | None,
    mission_id: uuid.UUID,
    name: str,
    filters: Filters,
    language: str | None,
    known: list[str] | None,
    who: uuid.UUID | None,
) -> View:
    """`get_view` once the mission is read: the view from `session`, the shared cache read
    and written through `cache` (the primary, with the reads on a replica)."""
    ctx = _context(session, mission, mission_id, filters, language)
    lang, config, problems = ctx.language, ctx.config, ctx.settings_problems
    version = mission.version or 0

    def key_of(view: str) -> str:
        parts: list[Any] = [
            view,
            SHAPES[view],
            filters.key(),
            lang,
            mission.sampling,
            mission.settings,
        ]
        return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]

    key = key_of(name)
    cached = _cached(cache, mission_id, key, known)
    now = utcnow()
    # The statement's sections' cached rows, read together when the statement is
    # computed (one round trip rather than five).
    section_rows: dict[str, Any] | None = None
    # The statement's sections taken from the cache while the data had moved on: their
    # versions and times (`part`). The statement says the oldest.
    behind: list[tuple[int, Any]] = []

    def made(view: str, section: BaseModel, as_of: tuple[int, Any] = (version, now)) -> View:
        data = {
            "mission_id": mission_id,
            "view": view,
            "version": as_of[0],
            "computed_at": as_of[1],
            "filters": filters.key(),
            "sampling": mission.sampling,
            "language": lang,
            "small_denominator": config.small_denominator,
            "settings_problems": problems,
            "replica_lag_s": lag,
            **section.model_dump(),
        }
        return _made(orjson.dumps(data))

    def part(section: str) -> BaseModel:
        """A section of the statement: the cached view, when the API would serve it to a
        console asking for that section now: of this very data, or of earlier data within
        its reuse time while data arrives (`findings_cache_s`, longer for a slow view).
        The statement then says the same as the consoles' views of its sections, and
        costs its own assembly rather than every section again on each data change (a
        quarter of a second at a million checklists); its `version` and `computed_at`
        are its oldest section's. Else the section is computed, and cached if a console
        watches it (an earlier version is in the cache), so that the console's own view
        of it is served too. A section nobody watches with these filters is not stored: a
        statement asked with a filter of its own (a new time window) would otherwise store
        five views nobody reads, compressing each (under a viewer asking a new window each
        time, an observer's p95 went from 75 to 104-114 ms in `bench.hardening`)."""
        nonlocal section_rows
        if section_rows is None:
            section_rows = _cached_bodies(cache, mission_id, [key_of(s) for s in SECTIONS])
        section_key = key_of(section)
        row = section_rows.get(section_key)
        if row is not None and row.body is not None:
            current = row.version >= version
            # Never older than the statement already served (`cached`): it goes forward.
            floor = cached.version if cached is not None else 0
            if current:
                return MODELS[section].model_validate_json(row.body)
            if row.version >= floor and _reusable(settings, row, now):
                # The time the body says: the row's own moves to the claim's while a
                # console computes the section again (`_claim`).
                data = orjson.loads(row.body)
                behind.append((row.version, datetime.fromisoformat(data["computed_at"])))
                return MODELS[section].model_validate(data)
        computed = VIEWS[section](ctx)
        if row is not None:
            started = time.perf_counter()
            view = made(section, computed)
            _store(mission_id, section_key, version, now, view, _ms_since(started))
        return computed

    if name == "statement":
        ctx.part = part
    reuse = 0.0 if cached is None else reuse_s(settings, cached.duration_ms)
    if cached is not None and (
        # The same data, or newer than this (replica's) read: never serve an older view.
        cached.version >= version
        or _reusable(settings, cached, now)
        # Due: unless this request claims it, another is computing it at this moment, and
        # the last one serves meanwhile rather than every dashboard asking computing it too.
        or (reuse > 0 and not _claim(mission_id, key, cached.computed_at, now))
    ):
        return _served(cached, version)
    try:
        # A view nobody has asked for yet (a new filter, a new time window) costs the token
        # one fresh compute of its allowance. A view that is only due again because data
        # arrived costs nothing: `_claim` and `reuse_s` bound those already.
        if who is not None and cached is None:
            allowance = ratelimit.compute_allowance(
                ratelimit.mission_limits(mission.settings), settings
            )
            ratelimit.spend(
                f"computes:{who}",
                1,
                allowance,
                f"more than {allowance.per_minute:g} findings views a minute (or "
                f"{allowance.burst} at once) computed afresh for this token; views already "
                "computed are still served",
                "compute_limit",
            )
        with gate.computing(mission_id, key, settings) as leads:
            if not leads:  # another thread of this process has just computed it
                again = _cached(cache, mission_id, key, known)
                if again is None:  # and failed: this one does not try again at once
                    raise gate.Busy()
                return _served(again, version)
            started = time.perf_counter()
            with one_snapshot(session):
                section = VIEWS[name](ctx)
            as_of = min([(version, now), *behind])  # the statement's oldest section
            view = made(name, section, as_of)
            _store(mission_id, key, as_of[0], now, view, _ms_since(started))
            if as_of[0] < version:  # assembled from sections a little behind
                view.behind_since = as_of[1]
            return view
    except (TooManyRequests, gate.Busy):
        if cached is None:
            raise
        return _served(cached, version)  # a view a little behind beats none


@contextmanager
def one_snapshot(session: Session) -> Iterator[None]:
    """Every statement of a view's compute sees the same data. A compute reads in several
    statements (the counting view: its totals, then its lists), and a fold committed
    between two of them would show in one and not the other until the view is due again.
    But a read session takes a snapshot per statement: on PostgreSQL it autocommits
    (`api.db`), which suits a poll answered from the cache, and SQLite's driver begins a
    transaction only before a write. So a compute runs in one transaction: on PostgreSQL
    the session hands its connection back and takes one in REPEATABLE READ (the pool
    sets it back afterwards); on SQLite it begins one. Any other session (on SQLite one
    already in a transaction, on PostgreSQL one that does not autocommit: an export's
    snapshot, a command's write session) is left as it is."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:
        if session.connection().connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            yield
            return
        session.execute(text("BEGIN"))
    elif autocommits(session):
        session.commit()  # an autocommit session's commit makes no round trip
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:
        yield
        return
    # What the compute reads once for all its sections (`once_per_snapshot`), forgotten
    # with the snapshot.
    session.info[SNAPSHOT_MEMO] = {}
    try:
        yield
    except BaseException:
        session.rollback()  # the snapshot ends here too, not with the caller
        raise
    finally:
        session.info.pop(SNAPSHOT_MEMO, None)
    session.commit()  # read only: it ends the snapshot (and keeps what the session loaded)


def _cached(session: Session, mission_id: uuid.UUID, key: str, known: list[str] | None) -> Any:
    """The cached row of a view (its body left out when the client holds it), or None."""
    held = FCACHE.c.etag.in_(known or [])
    return session.execute(
        select(
            FCACHE.c.version,
            FCACHE.c.computed_at,
            case((held, None), else_=FCACHE.c.body).label("body"),
            FCACHE.c.duration_ms,
            FCACHE.c.etag,
            case((held, None), else_=FCACHE.c.body_gz).label("body_gz"),
        ).where(FCACHE.c.mission_id == mission_id, FCACHE.c.key == key)
    ).first()


def _cached_bodies(session: Session, mission_id: uuid.UUID, keys: list[str]) -> dict[str, Any]:
    """The cached rows of these views by key, with their bodies (not the compressed ones),
    in one round trip: under saturated intake each statement waits its turn."""
    rows = session.execute(
        select(
            FCACHE.c.key,
            FCACHE.c.version,
            FCACHE.c.computed_at,
            FCACHE.c.body,
            FCACHE.c.duration_ms,
        ).where(FCACHE.c.mission_id == mission_id, FCACHE.c.key.in_(keys))
    ).all()
    return {row.key: row for row in rows}


def _served(cached: Any, version: int) -> View:
    """The cached view; when it is of data older than `version`, since when it is behind."""
    if cached.body is None:  # the client holds this very view
        view = View(b"", cached.etag)
    elif cached.etag is None:  # a row stored before ETags were
        body = cached.body.encode()
        view = View(body, _etag(body))
    else:
        view = View(cached.body.encode(), cached.etag, cached.body_gz)
    if cached.version < version:
        view.behind_since = cached.computed_at
    return view


def _reusable(settings: Settings, cached: Any, now: Any) -> bool:
    """May this cached view be served for newer data (it is within its reuse time)?"""
    reuse = reuse_s(settings, cached.duration_ms)
    return (now - cached.computed_at).total_seconds() < reuse


def reuse_s(settings: Settings, duration_ms: int) -> float:
    """How long a view that took `duration_ms` to compute is served while data arrives."""
    if settings.findings_cache_s <= 0:
        return 0.0
    by_cost = min(settings.findings_cache_cost_factor * duration_ms / 1000, COST_REUSE_MAX_S)
    return max(settings.findings_cache_s, by_cost)


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


@contextmanager
def _cache_write() -> Iterator[Session]:
    """A session on the primary database for the shared cache. On PostgreSQL the pool of
    the rate-limit counters (`ratelimit.bookkeeping_engine`): each statement commits on
    its own and does not wait for the disk, since a crash that loses a cached view costs
    one recompute (checklists and reviews keep their durable commits). A claim or a store
    is then one round trip, where BEGIN, SET LOCAL, the statement and COMMIT were four,
    each waiting its turn under saturated intake."""
    from api.db import get_engine, session_scope

    if get_engine().dialect.name == "postgresql":
        with Session(ratelimit.bookkeeping_engine()) as write:
            yield write
        return
    with session_scope() as write:
        yield write


def _claim(mission_id: uuid.UUID, key: str, seen_at: Any, now: Any) -> bool:
    """Should this request compute the view again? Only the one that moves the cached row's
    `computed_at` from what it read to now does; every other request, in this process or
    another, then finds the row fresh and serves it until the new one is stored. Without
    this, every dashboard that asked while a slow view was being computed computed it too.
    If the claimer fails, the row is computed again once its reuse time has passed."""
    try:
        with _cache_write() as write:
            moved = (
                write.connection()
                .execute(
                    update(FCACHE)
                    .where(
                        FCACHE.c.mission_id == mission_id,
                        FCACHE.c.key == key,
                        FCACHE.c.computed_at == seen_at,
                    )
                    .values(computed_at=now)
                )
                .rowcount
            )
        return bool(moved == 1)
    except DBAPIError:  # compute it, as if there were no cache
        log.warning("could not claim a findings view in the cache", exc_info=True)
        return True


def _store(
    mission_id: uuid.UUID, key: str, version: int, at: Any, view: View, duration_ms: int
) -> None:
    try:
        with _cache_write() as write:
            upsert(
                write,
                FCACHE,
                [
                    {
                        "mission_id": mission_id,
                        "key": key,
                        "version": version,
                        "computed_at": at,
                        "body": view.body.decode(),
                        "duration_ms": duration_ms,
                        "etag": view.etag,
                        "body_gz": view.gzipped,
                    }
                ],
                ["mission_id", "key"],
                ["version", "computed_at", "body", "duration_ms", "etag", "body_gz"],
                # Two nodes reading replicas at different points: the older never wins.
                only_if=lambda proposed: FCACHE.c.version <= proposed.version,
            )
            _sweep(write, at)
    except DBAPIError:  # the cache is an optimisation: a failed write only costs a recompute
        log.warning("could not store a findings view in the cache", exc_info=True)


def _sweep(write: Session, at: Any) -> None:
    """Remove the views computed more than CACHE_KEEP before `at` (filters nobody asks for
    any more), at most once a SWEEP_EVERY_S per process: on every store it was a statement
    more for every view computed, each waiting its turn under saturated intake."""
    started = time.monotonic()
    if started - _last_sweep[0] < SWEEP_EVERY_S:
        return
    write.execute(delete(FCACHE).where(FCACHE.c.computed_at < at - CACHE_KEEP))
    _last_sweep[0] = started
