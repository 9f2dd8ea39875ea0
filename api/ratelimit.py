"""Per-credential rate limits that hold across every API process: a fixed-window counter per
credential in the database, bumped by one upsert per request.

The bump runs in a short transaction of its own, so refused and failed requests count too
(a request's own transaction would roll its bump back). On PostgreSQL it commits with
`synchronous_commit = off`: a crash may forget the last few bumps, which costs nothing,
and the request does not wait for a second WAL flush.
"""

from __future__ import annotations

import math
import time
import uuid

from sqlalchemy import delete, text
from sqlalchemy.dialects import postgresql, sqlite

from api.config import Settings
from api.db import get_engine
from api.errors import TooManyRequests
from models import RateLimitWindow

RL = RateLimitWindow.__table__  # type: ignore[attr-defined]
WINDOW_S = 60


def hit(credential_id: uuid.UUID, settings: Settings, now: float | None = None) -> None:
    """Count one request of this credential; raise 429 with Retry-After past the limit."""
    limit = settings.rate_limit_per_minute
    if limit <= 0:
        return
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    engine = get_engine()
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    bump = insert(RL).values(credential_id=credential_id, window=window, hits=1)
    stmt = bump.on_conflict_do_update(
        index_elements=["credential_id", "window"], set_={"hits": RL.c.hits + 1}
    ).returning(RL.c.hits)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL synchronous_commit = off"))
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
