"""Per-credential rate limits that hold across every API process: a fixed-window counter per
credential in the database, bumped by one upsert per request.

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
import time
import uuid
from functools import lru_cache
from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy import Engine, bindparam, create_engine, delete, event, text
from sqlalchemy.dialects import postgresql, sqlite

from api.config import Settings, get_settings
from api.db import (
    application_name,
    driver_autocommit,
    driver_sql,
    get_engine,
    ping_idle_connections,
)
from api.errors import TooManyRequests
from models import RateLimitWindow
from models.base import table_of

RL = table_of(RateLimitWindow)
WINDOW_S = 60


def bookkeeping_engine() -> Engine:
    """The pool for rate-limit counters and last-used times: autocommit, no waiting for
    the disk."""
    return _counter_engine(get_engine())


@lru_cache(maxsize=4)
def _counter_engine(main: Engine) -> Engine:
    if main.dialect.name == "sqlite":
        engine = create_engine(
            main.url,
            isolation_level="AUTOCOMMIT",
            connect_args={"check_same_thread": False, "timeout": 30},
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
        pool_size=max(1, settings.db_pool_size),
        max_overflow=0,
        pool_timeout=10,
        connect_args={
            "connect_timeout": 5,
            "application_name": application_name(),
            "options": "-c synchronous_commit=off -c statement_timeout=5000",
        },
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
# are not counted: they are refused before any work is done.
CREDENTIAL_COLUMNS = ("id", "mission_id", "role", "observer_id", "revoked_at", "last_used_at")
_LOOKUP_AND_BUMP = text(
    f"WITH cred AS (SELECT {', '.join(CREDENTIAL_COLUMNS)}"
    " FROM credential WHERE token_hash = :digest), "
    'bump AS (INSERT INTO rate_limit_window (credential_id, "window", hits)'
    " SELECT id, :window, 1 FROM cred WHERE revoked_at IS NULL"
    ' ON CONFLICT (credential_id, "window") DO UPDATE SET hits = rate_limit_window.hits + 1'
    " RETURNING hits) "
    "SELECT cred.*, (SELECT hits FROM bump) AS hits FROM cred"
)


@lru_cache(maxsize=1)
def _driver_statements() -> tuple[str, str]:
    return driver_sql(_LOOKUP_AND_BUMP), driver_sql(_statements("postgresql")[1])


def lookup_and_count(
    digest: str, settings: Settings, now: float | None = None
) -> tuple[Any, int] | None:
    """On PostgreSQL with a limit set: (the credential row or None, this window's hits so
    far), found and counted in one statement. None where the caller must take two steps:
    look the credential up itself, then `hit`. Every request runs it, so it goes to the
    driver directly (`driver_autocommit`)."""
    if settings.rate_limit_per_minute <= 0:
        return None
    engine = bookkeeping_engine()
    if engine.dialect.name != "postgresql":
        return None
    window = int((time.time() if now is None else now) // WINDOW_S)
    lookup, clear = _driver_statements()
    with driver_autocommit(engine) as conn, conn.cursor(row_factory=namedtuple_row) as cur:
        row = cur.execute(lookup, {"digest": digest, "window": window}).fetchone()
        if row is not None and row.hits == 1:
            # The first request of a window clears this credential's old windows.
            cur.execute(clear, {"cid": row.id, "window": window})
    return row, (row.hits or 0) if row is not None else 0


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
