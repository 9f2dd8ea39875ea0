"""Per-credential rate limits that hold across every API process: a fixed-window counter per
credential in the database, bumped by one upsert per request.

The bump is one autocommitted statement on a small pool of its own, so refused and failed
requests count too (a request's own transaction would roll its bump back) and it costs one
round trip: no BEGIN/COMMIT, no pre-ping. On PostgreSQL those connections run with
`synchronous_commit = off`: a crash may forget the last few bumps, which costs nothing, and
the request does not wait for a second WAL flush. A connection that died with the database
fails one bump (503, like the request itself would) and the pool starts afresh.
"""

from __future__ import annotations

import math
import time
import uuid
from functools import lru_cache

from sqlalchemy import Engine, create_engine, delete
from sqlalchemy.dialects import postgresql, sqlite

from api.config import Settings
from api.db import get_engine
from api.errors import TooManyRequests
from models import RateLimitWindow

RL = RateLimitWindow.__table__  # type: ignore[attr-defined]
WINDOW_S = 60


@lru_cache(maxsize=4)
def _counter_engine(main: Engine) -> Engine:
    if main.dialect.name != "postgresql":
        return main.execution_options(isolation_level="AUTOCOMMIT")
    return create_engine(
        main.url,
        isolation_level="AUTOCOMMIT",
        pool_size=4,
        max_overflow=16,
        pool_timeout=10,
        connect_args={
            "connect_timeout": 5,
            "options": "-c synchronous_commit=off -c statement_timeout=5000",
        },
    )


def hit(credential_id: uuid.UUID, settings: Settings, now: float | None = None) -> None:
    """Count one request of this credential; raise 429 with Retry-After past the limit."""
    limit = settings.rate_limit_per_minute
    if limit <= 0:
        return
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    engine = _counter_engine(get_engine())
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    bump = insert(RL).values(credential_id=credential_id, window=window, hits=1)
    stmt = bump.on_conflict_do_update(
        index_elements=["credential_id", "window"], set_={"hits": RL.c.hits + 1}
    ).returning(RL.c.hits)
    with engine.connect() as conn:
        hits = conn.execute(stmt).scalar_one()
        if hits == 1:
            # The first request of a window clears this credential's old windows.
            conn.execute(
                delete(RL).where(RL.c.credential_id == credential_id, RL.c.window < window)
            )
    if hits > limit:
        retry = max(1, math.ceil((window + 1) * WINDOW_S - now))
        raise TooManyRequests(
            f"more than {limit} requests in a minute with this token; retry in {retry} s",
            code="rate_limited",
            headers={"Retry-After": str(retry)},
        )
