"""Rate limits that hold across every API process, kept in the database: requests per
credential (a fixed-window counter, bumped by one upsert per request), and work allowances
(`spend`): checklists per observer, fresh findings computes per token, requests with bad
tokens per client address.

The bump is one autocommitted statement on a pool of its own, so refused and failed
requests count too (a request's own transaction would roll its bump back), and it costs one
round trip: no BEGIN/COMMIT. Those connections commit without waiting for the disk
(PostgreSQL `synchronous_commit = off`, SQLite `synchronous = OFF`): a crash may forget the
last few bumps, which costs nothing, and the request does not wait for a second flush. The
same pool writes a credential's last-used time (`bookkeeping_engine`), which may be lost
the same way. Like the main pool, a connection left idle for a second is checked before
use (`api.db.ping_idle_connections`); a busy one that died with the database fails one bump
(503, as the request itself would) and is replaced.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from psycopg.rows import namedtuple_row
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, bindparam, create_engine, delete, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.config import Settings, get_settings
from api.db import (
    driver_autocommit,
    driver_sql,
    get_engine,
    ping_idle_connections,
    postgres_connect_args,
)
from api.errors import TooManyRequests
from api.security import signed, token_digest
from models import Mission, RateLimitWindow
from models.base import table_of

RL = table_of(RateLimitWindow)
WINDOW_S = 60


def bookkeeping_engine() -> Engine:
    """The pool for rate-limit counters, last-used times and the findings views' cache:
    autocommit, no waiting for the disk."""
    return _counter_engine(get_engine())


@lru_cache(maxsize=4)
def _counter_engine(main: Engine) -> Engine:
    if main.dialect.name == "sqlite":
        engine = create_engine(
            main.url,
            isolation_level="AUTOCOMMIT",
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_timeout=get_settings().db_pool_timeout_s,
        )

        @event.listens_for(engine, "connect")
        def _no_fsync(dbapi_conn: Any, _: Any) -> None:
            # In WAL mode `synchronous` is per connection: the counters' commits skip the
            # fsync (a crash may forget a few bumps), the checklists' commits keep theirs.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return ping_idle_connections(engine)
    settings = get_settings()
    engine = create_engine(
        main.url,
        isolation_level="AUTOCOMMIT",
        # One connection per request a process works on at once (its worker threads are as
        # many as the main pool's connections), and no overflow: a pool half that size,
        # with overflow connections opened and closed per use, started about eight
        # PostgreSQL sessions a second under `make bench`, each costing milliseconds of CPU.
        # (The dashboards' few threads, `dashboard_threads`, share it: each holds a
        # connection for one statement, so they wait for one at most briefly.)
        pool_size=max(1, settings.db_pool_size),
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_s,
        connect_args=postgres_connect_args(
            settings, "-c synchronous_commit=off -c statement_timeout=5000"
        ),
    )
    return ping_idle_connections(engine)  # as the main pool: only a connection left idle


@lru_cache(maxsize=4)
def _statements(dialect: str) -> tuple[Any, Any]:
    """The bump and the clean-up, built once (every request runs the bump)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    first = insert(RL).values(credential_id=bindparam("cid"), window=bindparam("window"), hits=1)
    bump = first.on_conflict_do_update(
        index_elements=["credential_id", "window"], set_={"hits": RL.c.hits + 1}
    ).returning(RL.c.hits)
    clear = delete(RL).where(
        RL.c.credential_id == bindparam("cid"), RL.c.window < bindparam("window")
    )
    return bump, clear


# PostgreSQL finds the credential and counts the request in one autocommitted round trip
# (SQLite has no INSERT inside WITH, and takes the two steps). Unknown and revoked tokens
# are not counted: they are refused before any work is done. The same statement deletes the
# credential's earlier windows and writes its last-used time when that is older than
# `token_touch_interval_s`: on election day an observer's requests come minutes apart, so
# nearly every one is the first of its window and past the interval, and these were two
# round trips more. (On the other requests each is one probe of an index.) Both skip rows
# another request of the token holds (SKIP LOCKED), which does the same work: holding its
# window's row, a request never waits for another's, so two of one token on either side
# of a minute never deadlock.
CREDENTIAL_COLUMNS = ("id", "mission_id", "role", "observer_id", "revoked_at", "last_used_at")
_LOOKUP_AND_BUMP = text(
    f"WITH cred AS (SELECT {', '.join(CREDENTIAL_COLUMNS)}"
    " FROM credential WHERE token_hash = :digest), "
    'bump AS (INSERT INTO rate_limit_window (credential_id, "window", hits)'
    " SELECT id, :window, 1 FROM cred WHERE revoked_at IS NULL"
    ' ON CONFLICT (credential_id, "window") DO UPDATE SET hits = rate_limit_window.hits + 1'
    " RETURNING hits), "
    'gone AS (DELETE FROM rate_limit_window WHERE (credential_id, "window") IN'
    ' (SELECT credential_id, "window" FROM rate_limit_window'
    ' WHERE credential_id = (SELECT id FROM cred) AND "window" < :window'
    " FOR UPDATE SKIP LOCKED)), "
    "touch AS (UPDATE credential SET last_used_at = :used_at WHERE id ="
    " (SELECT credential.id FROM credential JOIN cred ON cred.id = credential.id"
    " WHERE cred.revoked_at IS NULL AND (credential.last_used_at IS NULL"
    " OR credential.last_used_at < :stale_before) FOR NO KEY UPDATE OF credential SKIP LOCKED)) "
    "SELECT cred.*, (SELECT hits FROM bump) AS hits FROM cred"
)


# The same, spending a work allowance too (`Charge`): a checklist post of a token this
# process has seen before is found, counted and charged in one round trip.
_LOOKUP_BUMP_AND_SPEND = text(
    str(_LOOKUP_AND_BUMP.text).replace(
        " SELECT cred.*,",
        ", spend AS (INSERT INTO rate_limit_bucket (key, tat)"
        " SELECT :key, :now + :cost_s FROM cred WHERE revoked_at IS NULL"
        " ON CONFLICT (key) DO UPDATE SET tat = GREATEST(rate_limit_bucket.tat, :now) + :cost_s"
        " WHERE GREATEST(rate_limit_bucket.tat, :now) - :now + :fit_s <= :burst_s"
        " RETURNING tat)"
        " SELECT cred.*, (SELECT count(*) FROM spend) AS spent,",
    )
)


@lru_cache(maxsize=1)
def _driver_statements() -> tuple[str, str]:
    return driver_sql(_LOOKUP_AND_BUMP), driver_sql(_LOOKUP_BUMP_AND_SPEND)


def lookup_and_count(
    digest: str,
    settings: Settings,
    used_at: datetime,
    now: float | None = None,
    work: Charge | None = None,
) -> tuple[Any, int, bool | None] | None:
    """On PostgreSQL with a limit set: (the credential row or None, this window's hits so
    far, whether `work` was charged: None without it), found, counted and charged in one
    statement, which also writes the last-used time (`used_at`) when it is due; the row
    read gives the time before. None where the caller must take two steps: look the
    credential up itself, then `hit` (and `charge`), and write the time. Every request runs
    it, so it goes to the driver directly (`driver_autocommit`)."""
    if settings.rate_limit_per_minute <= 0:
        return None
    engine = bookkeeping_engine()
    if engine.dialect.name != "postgresql":
        return None
    now = time.time() if now is None else now
    lookup, lookup_and_spend = _driver_statements()
    params: dict[str, Any] = {
        "digest": digest,
        "window": int(now // WINDOW_S),
        "used_at": used_at,
        "stale_before": used_at - timedelta(seconds=settings.token_touch_interval_s),
    }
    if work is not None:
        lookup = lookup_and_spend
        params |= work.params(now)
    with driver_autocommit(engine) as conn, conn.cursor(row_factory=namedtuple_row) as cur:
        row = cur.execute(lookup, params).fetchone()
    if row is None:
        return None, 0, None
    return row, row.hits or 0, None if work is None else bool(row.spent)


def hit(credential_id: uuid.UUID, settings: Settings, now: float | None = None) -> None:
    """Count one request of this credential; raise 429 with Retry-After past the limit."""
    limit = settings.rate_limit_per_minute
    if limit <= 0:
        return
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    engine = bookkeeping_engine()
    bump, clear = _statements(engine.dialect.name)
    params = {"cid": credential_id, "window": window}
    with engine.connect() as conn:
        hits = conn.execute(bump, params).scalar_one()
        if hits == 1:
            # The first request of a window clears this credential's old windows.
            conn.execute(clear, params)
    check(hits, settings, now)


def check(hits: int, settings: Settings, now: float | None = None) -> None:
    """Raise 429 with Retry-After when `hits` requests in this window are over the limit."""
    limit = settings.rate_limit_per_minute
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    if limit > 0 and hits > limit:
        retry = max(1, math.ceil((window + 1) * WINDOW_S - now))
        raise TooManyRequests(
            f"more than {limit} requests in a minute with this token; retry in {retry} s",
            code="rate_limited",
            headers={"Retry-After": str(retry)},
        )


# --- work allowances ---------------------------------------------------------------------
#
# Requests are a poor measure of work: a batch of 200 checklists is one request. Work is
# metered by GCRA ("generic cell rate algorithm", a token bucket kept as one number): each
# key holds the time `tat` at which its bucket is empty again. Spending `cost` units moves it
# `cost × T` later (T = 60 s / units per minute), and is allowed while the bucket is at most
# `burst × T` ahead of now. One conditional upsert per spend, autocommitted on the
# bookkeeping pool: a refused spend changes nothing, so a client that keeps knocking is not
# kept out longer, and a refused batch stores nothing at all.


@dataclass(frozen=True, slots=True)
class Allowance:
    """`per_minute` units sustained, `burst` at once; a `per_minute` of 0 or less: no limit."""

    per_minute: float
    burst: int

    @property
    def off(self) -> bool:
        return self.per_minute <= 0


class MissionLimits(BaseModel):
    """A mission's own limits, from `mission.settings["limits"]`; each unset (or invalid)
    one is the server's default (`POLLCHECK_LIMIT_…`)."""

    model_config = ConfigDict(extra="ignore")

    checklists_per_minute: float | None = Field(None, ge=0)
    checklists_burst: int | None = Field(None, ge=1)
    computes_per_minute: float | None = Field(None, ge=0)
    computes_burst: int | None = Field(None, ge=1)


def mission_limits(mission_settings: Any) -> MissionLimits:
    """The mission's limits; a bad value is left out (its default applies), never a 500."""
    raw = mission_settings.get("limits") if isinstance(mission_settings, dict) else None
    if not isinstance(raw, dict):
        return MissionLimits()
    good = {}
    for name in MissionLimits.model_fields:
        if name in raw:
            try:
                MissionLimits.model_validate({name: raw[name]})
            except ValidationError:
                continue
            good[name] = raw[name]
    return MissionLimits.model_validate(good)


def _allowance(per_minute: float | None, burst: int | None, default: Allowance) -> Allowance:
    """The mission's own value where it set one, else the server's default."""
    return Allowance(
        default.per_minute if per_minute is None else per_minute, burst or default.burst
    )


def checklist_allowance(limits: MissionLimits, settings: Settings) -> Allowance:
    default = Allowance(settings.limit_checklists_per_minute, settings.limit_checklists_burst)
    return _allowance(limits.checklists_per_minute, limits.checklists_burst, default)


def compute_allowance(limits: MissionLimits, settings: Settings) -> Allowance:
    default = Allowance(settings.limit_computes_per_minute, settings.limit_computes_burst)
    return _allowance(limits.computes_per_minute, limits.computes_burst, default)


MISSION_LIMITS_TTL_S = 10.0  # a change of a mission's limits reaches every process this soon
_mission_cache: dict[uuid.UUID, tuple[float, MissionLimits]] = {}
_mission_cache_lock = threading.Lock()


def limits_of(mission_id: uuid.UUID) -> MissionLimits:
    """A mission's limits, read at most every MISSION_LIMITS_TTL_S per process: intake
    needs them on every request, and they change once a mission, if ever."""
    now = time.monotonic()
    cached = _mission_cache.get(mission_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    with bookkeeping_engine().connect() as conn:
        raw = conn.execute(_MISSION_SETTINGS, {"mid": mission_id}).scalar()
    limits = mission_limits(raw)
    with _mission_cache_lock:
        if len(_mission_cache) > 10_000:
            _mission_cache.clear()
        _mission_cache[mission_id] = (now + MISSION_LIMITS_TTL_S, limits)
    return limits


def forget_mission(mission_id: uuid.UUID | None = None) -> None:
    """Read the mission's limits afresh on next use (after an update; tests)."""
    with _mission_cache_lock:
        if mission_id is None:
            _mission_cache.clear()
        else:
            _mission_cache.pop(mission_id, None)


_MISSION_SETTINGS = select(Mission.__table__.c.settings).where(  # type: ignore[attr-defined]
    Mission.__table__.c.id == bindparam("mid")  # type: ignore[attr-defined]
)

_SPEND = (
    "INSERT INTO rate_limit_bucket (key, tat) VALUES (:key, :now + :cost_s) "
    "ON CONFLICT (key) DO UPDATE SET tat = {g}(rate_limit_bucket.tat, :now) + :cost_s "
    "WHERE {g}(rate_limit_bucket.tat, :now) - :now + :fit_s <= :burst_s "
    "RETURNING tat"
)
_BUCKET = "SELECT tat FROM rate_limit_bucket WHERE key = :key"
_SWEEP = "DELETE FROM rate_limit_bucket WHERE tat < :before"
SWEEP_EVERY = 1000  # spends per process between clean-ups of buckets long empty
_spends = 0


@lru_cache(maxsize=2)
def _spend_sql(dialect: str) -> tuple[Any, Any, Any]:
    spend = text(_SPEND.format(g="GREATEST" if dialect == "postgresql" else "MAX"))
    statements = (spend, text(_BUCKET), text(_SWEEP))
    if dialect == "postgresql":  # for the driver directly (`driver_autocommit`)
        return tuple(driver_sql(s) for s in statements)  # type: ignore[return-value]
    return statements


def _run(engine: Engine, statement: Any, params: dict[str, Any]) -> Any:
    """One autocommitted statement; its first column of its first row, if any."""
    if engine.dialect.name == "postgresql":
        with driver_autocommit(engine) as conn, conn.cursor() as cur:
            cur.execute(statement, params)
            row = cur.fetchone() if cur.description else None
        return row[0] if row else None
    with engine.connect() as conn:
        result = conn.execute(statement, params)
        return result.scalar() if result.returns_rows else None


@dataclass(frozen=True, slots=True)
class Charge:
    """`cost` units of a key's allowance, and what a refusal says."""

    key: str
    cost: int
    allowance: Allowance
    what: str
    code: str

    def params(self, now: float) -> dict[str, Any]:
        interval = 60.0 / self.allowance.per_minute
        return {
            "key": self.key,
            "now": now,
            "cost_s": self.cost * interval,
            "fit_s": min(self.cost, self.allowance.burst) * interval,
            # float rounding must not refuse a full fit
            "burst_s": self.allowance.burst * interval + 1e-6,
        }

    def refusal(self, now: float | None = None) -> TooManyRequests:
        """The 429 of a charge that did not fit, with the wait until it would."""
        now = time.time() if now is None else now
        p = self.params(now)
        engine = bookkeeping_engine()
        tat = _run(engine, _spend_sql(engine.dialect.name)[1], {"key": self.key}) or now
        retry = max(1, math.ceil(max(tat, now) - now + p["fit_s"] - p["burst_s"]))
        return TooManyRequests(
            f"{self.what}; retry in {retry} s", code=self.code, headers={"Retry-After": str(retry)}
        )


def spend(
    key: str,
    cost: int,
    allowance: Allowance,
    what: str,
    code: str,
    now: float | None = None,
) -> None:
    """Spend `cost` units of the key's allowance, or raise 429 with Retry-After and spend
    nothing. A cost larger than the burst passes when the bucket is empty (else it could
    never pass), and keeps the key out for as long as it is worth."""
    if allowance.off or cost <= 0:
        return
    charge(Charge(key, cost, allowance, what, code), now)


def charge(work: Charge, now: float | None = None) -> None:
    """Spend a charge on its own (one autocommitted statement), or raise its refusal."""
    global _spends
    now = time.time() if now is None else now
    engine = bookkeeping_engine()
    spend_sql, _, sweep_sql = _spend_sql(engine.dialect.name)
    if _run(engine, spend_sql, work.params(now)) is None:
        raise work.refusal(now)
    _spends += 1
    if _spends % SWEEP_EVERY == 0:
        _run(engine, sweep_sql, {"before": now - 60})


class Submitter(Protocol):
    """Who sends checklists (`api.deps.Principal`)."""

    @property
    def mission_id(self) -> uuid.UUID: ...

    @property
    def credential_id(self) -> uuid.UUID: ...

    @property
    def observer_id(self) -> uuid.UUID | None: ...


def checklist_key(principal: Submitter) -> str:
    return f"checklists:{principal.observer_id or principal.credential_id}"


def checklist_charge(principal: Submitter, count: int, settings: Settings) -> Charge | None:
    """`count` checklists from one observer (or analyst: per token); None when the
    mission's checklists are not limited. Per observer, not per token: an observer given a
    second token shares the first one's allowance."""
    allowance = checklist_allowance(limits_of(principal.mission_id), settings)
    if allowance.off or count <= 0:
        return None
    return Charge(
        checklist_key(principal),
        count,
        allowance,
        f"more than {allowance.per_minute:g} checklists a minute (or {allowance.burst} at once)"
        f" from this observer; nothing of this request was stored",
        "checklist_limit",
    )


def spend_checklists(principal: Submitter, count: int, settings: Settings) -> None:
    """`count` checklists before any is stored: 429 and nothing stored past the mission's
    allowance (`checklist_charge`)."""
    work = checklist_charge(principal, count, settings)
    if work is not None:
        charge(work)


# --- requests with bad tokens, per client address ----------------------------------------
#
# An unknown token costs a database lookup to find out; a flood of them from one address
# took a real observer's p95 from 12 to 305 ms. Each process remembers which addresses the
# shared bucket refused, and until when, and refuses their unknown tokens itself (no
# database, no route: `AddressGuard`), while tokens this server signed (`api.security`) or
# this process has seen valid still pass: observers behind the flooding address's NAT
# are not locked out with the attacker.

_blocked: dict[str, float] = {}  # address -> Unix time until which its bad tokens are refused
_GOOD_KEEP = 50_000
# Tokens this process has seen valid, by digest, with whom they were. Never used to let a
# request in (every request looks its token up, so revocation acts at once): only to let
# an address's valid tokens through its block, and to know, before the lookup, which
# allowance a checklist post charges (`known`).
_good: OrderedDict[str, Any] = OrderedDict()
_good_lock = threading.Lock()


def remember_good(digest: str, principal: Any) -> None:
    with _good_lock:
        _good[digest] = principal
        _good.move_to_end(digest)
        if len(_good) > _GOOD_KEEP:
            _good.popitem(last=False)


def known(digest: str) -> Any:
    """Who this token was when this process last saw it valid (None: not seen)."""
    return _good.get(digest)


def blocked_for(address: str, token: str | None, now: float | None = None) -> int | None:
    """Seconds left while this address's bad tokens are refused here (None: not refused).
    A token this server signed, or one this process has seen valid, is never refused by
    this check: its database lookup decides, as for any other address."""
    until = _blocked.get(address)
    if until is None:
        return None
    now = time.time() if now is None else now
    if until <= now:
        _blocked.pop(address, None)
        return None
    if token is not None and (
        signed(token, get_settings().secret_key) or token_digest(token) in _good
    ):
        return None
    return max(1, math.ceil(until - now))


def bad_token(address: str, settings: Settings) -> None:
    """Count a request with a missing, unknown or revoked token from this address; past the
    address's allowance raise 429 (and refuse its bad tokens here until the Retry-After)."""
    allowance = Allowance(settings.limit_failed_auth_per_minute, settings.limit_failed_auth_burst)
    if allowance.off:
        return
    left = blocked_for(address, None)
    if left is not None:
        raise _too_many_bad_tokens(left)
    try:
        spend(f"auth:{address}", 1, allowance, "too many requests with bad tokens", "bad_tokens")
    except TooManyRequests as e:
        retry = int((e.headers or {}).get("Retry-After", "1"))
        if len(_blocked) > 100_000:
            _blocked.clear()
        _blocked[address] = time.time() + retry
        raise _too_many_bad_tokens(retry) from e


def _too_many_bad_tokens(retry: int) -> TooManyRequests:
    return TooManyRequests(
        f"too many requests with missing, unknown or revoked tokens from this address; "
        f"retry in {retry} s",
        code="bad_tokens",
        headers={"Retry-After": str(retry)},
    )


def forget_addresses() -> None:
    """Forget every refused address and every token seen valid (tests)."""
    _blocked.clear()
    with _good_lock:
        _good.clear()


class AddressGuard:
    """Refuse, before any routing or database work, requests from an address whose bad
    tokens the shared bucket refused, unless they carry a token this process has seen
    valid. Token-less GET and HEAD requests pass (the web app's files, health checks): a
    route that needs a token refuses them itself, still without the database."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _blocked:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if address in _blocked:
            token = _bearer(scope)
            if token is not None or scope["method"] not in ("GET", "HEAD"):
                left = blocked_for(address, token)
                if left is not None:
                    error = _too_many_bad_tokens(left)
                    response = JSONResponse(
                        error.body(), status_code=error.status_code, headers=error.headers
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def client_address(request: Any) -> str:
    """The client's address as the server sees it (behind a proxy, run uvicorn with
    `--forwarded-allow-ips` so that this is the phone's, not the proxy's)."""
    return request.client.host if request.client else "unknown"
