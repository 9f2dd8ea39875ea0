"""Rate limits per credential, counted in the database so that they hold across processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from api import deps, ratelimit
from api.db import session_scope
from api.security import token_digest
from models import Credential, Role
from models.ratelimit import RateLimitWindow
from tests.factories import app_with_settings, auth, make_mission, make_token


def _app_with_limit(limit: int) -> Any:
    return app_with_settings(rate_limit_per_minute=limit)


def test_a_token_over_its_limit_gets_429_with_retry_after_on_every_process(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One fixed instant, 45 s into a window: the calls must not straddle two windows.
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_800_000_045.0))
    mission, _ = make_mission(session)
    busy = make_token(session, mission.id, Role.viewer)
    calm = make_token(session, mission.id, Role.viewer)
    # Two app instances stand for two server processes: they share only the database.
    with (
        TestClient(_app_with_limit(3), raise_server_exceptions=False) as one,
        TestClient(_app_with_limit(3), raise_server_exceptions=False) as two,
    ):
        statuses = [c.get("/me", headers=auth(busy)).status_code for c in (one, two, one)]
        assert statuses == [200, 200, 200]
        refused = two.get("/me", headers=auth(busy))
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "15"
        assert one.get("/me", headers=auth(calm)).status_code == 200  # per token, not global


def test_a_limit_of_zero_turns_it_off(session: Any) -> None:
    mission, _ = make_mission(session)
    token = make_token(session, mission.id, Role.viewer)
    with TestClient(_app_with_limit(0), raise_server_exceptions=False) as client:
        assert all(client.get("/me", headers=auth(token)).status_code == 200 for _ in range(5))


def _windows(token: str) -> list[tuple[int, int]]:
    with session_scope() as s:
        rows = s.execute(
            select(RateLimitWindow.window, RateLimitWindow.hits)
            .join(Credential, Credential.id == RateLimitWindow.credential_id)
            .where(Credential.token_hash == token_digest(token))
            .order_by(RateLimitWindow.window)
        )
        return [(w, h) for w, h in rows]


def _last_used(token: str) -> datetime | None:
    with session_scope() as s:
        return s.scalar(
            select(Credential.last_used_at).where(Credential.token_hash == token_digest(token))
        )


def test_a_tokens_first_request_of_a_window_clears_its_earlier_windows(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_800_000_005.0]
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: clock[0]))
    mission, _ = make_mission(session)
    token = make_token(session, mission.id, Role.viewer)
    window = 1_800_000_005 // 60
    with TestClient(_app_with_limit(100)) as client:
        for _ in range(2):
            assert client.get("/me", headers=auth(token)).status_code == 200
        assert _windows(token) == [(window, 2)]
        clock[0] += 60
        assert client.get("/me", headers=auth(token)).status_code == 200
        assert _windows(token) == [(window + 1, 1)]
        clock[0] += 300  # a phone back after five minutes
        assert client.get("/me", headers=auth(token)).status_code == 200
        assert _windows(token) == [(window + 6, 1)]


def test_a_tokens_last_used_time_is_written_at_most_once_an_interval(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
    clock = [start]
    monkeypatch.setattr(deps, "utcnow", lambda: clock[0])
    mission, _ = make_mission(session)
    token = make_token(session, mission.id, Role.viewer)
    revoked = make_token(session, mission.id, Role.viewer)
    app = app_with_settings(rate_limit_per_minute=100, token_touch_interval_s=60)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/me", headers=auth(token)).status_code == 200
        assert _last_used(token) == start
        clock[0] = start + timedelta(seconds=59)
        assert client.get("/me", headers=auth(token)).status_code == 200
        assert _last_used(token) == start
        clock[0] = start + timedelta(seconds=61)
        assert client.get("/me", headers=auth(token)).status_code == 200
        assert _last_used(token) == start + timedelta(seconds=61)

        with session_scope() as s:
            s.execute(
                update(Credential)
                .where(Credential.token_hash == token_digest(revoked))
                .values(revoked_at=start)
            )
        assert client.get("/me", headers=auth(revoked)).status_code == 401
        assert _last_used(revoked) is None  # a refused token is not "used"


@pytest.mark.postgres_only
def test_on_postgresql_the_token_costs_one_statement_however_long_since_its_last_request(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An observer's requests on election day come minutes apart: each is the first of its
    window and due a last-used time, and still one statement for the token."""
    clock = [1_800_000_005.0]
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: clock[0]))
    start = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
    monkeypatch.setattr(deps, "utcnow", lambda: start + timedelta(seconds=clock[0] - 1.8e9))
    sent: list[str] = []
    real = ratelimit.driver_autocommit

    class Counted:
        """The driver's connection, its cursors' statements counted."""

        def __init__(self, conn: Any) -> None:
            self._conn = conn

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

        def cursor(self, *a: Any, **kw: Any) -> Any:
            return Cursor(self._conn.cursor(*a, **kw))

    class Cursor:
        def __init__(self, cur: Any) -> None:
            self._cur = cur

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cur, name)

        def __enter__(self) -> Cursor:
            self._cur.__enter__()
            return self

        def __exit__(self, *exc: object) -> None:
            self._cur.__exit__(*exc)

        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Cursor:
            sent.append(str(query))
            self._cur.execute(query, *args, **kwargs)
            return self

    @contextmanager
    def driver(engine: Any) -> Iterator[Any]:
        with real(engine) as conn:
            yield Counted(conn)

    def through_sqlalchemy(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    monkeypatch.setattr(ratelimit, "driver_autocommit", driver)
    mission, _ = make_mission(session)
    token = make_token(session, mission.id, Role.viewer)
    with TestClient(_app_with_limit(100)) as client:
        engine = ratelimit.bookkeeping_engine()
        event.listen(engine, "before_cursor_execute", through_sqlalchemy)
        try:
            for gap in (0, 300, 600):
                clock[0] += gap
                sent.clear()
                assert client.get("/me", headers=auth(token)).status_code == 200
                assert len(sent) == 1, sent
                assert _windows(token) == [(int(clock[0] // 60), 1)]
                assert _last_used(token) == start + timedelta(seconds=clock[0] - 1.8e9)
        finally:
            event.remove(engine, "before_cursor_execute", through_sqlalchemy)


@pytest.mark.postgres_only
def test_on_postgresql_a_request_never_waits_for_the_rows_another_request_of_its_token_holds(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests of one token on either side of a minute, both due a last-used time:
    each holds its own window's row, so neither may wait for the credential's row or an
    old window's row the other holds (they deadlocked). Those writes are skipped, and the
    next request does them."""
    import psycopg

    clock = [1_800_000_005.0]
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: clock[0]))
    start = datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
    monkeypatch.setattr(deps, "utcnow", lambda: start + timedelta(seconds=clock[0] - 1.8e9))
    mission, _ = make_mission(session)
    token = make_token(session, mission.id, Role.viewer)
    window = int(clock[0] // 60)
    url = session.get_bind().url.set(drivername="postgresql").render_as_string(hide_password=False)
    with TestClient(_app_with_limit(100)) as client:
        assert client.get("/me", headers=auth(token)).status_code == 200
        with psycopg.connect(url) as other:  # another request, its transaction still open
            other.execute(
                "SELECT 1 FROM credential WHERE token_hash = %s FOR UPDATE", [token_digest(token)]
            )
            other.execute(
                'SELECT 1 FROM rate_limit_window WHERE "window" = %s FOR UPDATE', [window]
            )
            clock[0] += 120
            # Waiting, it would get the bookkeeping statement's timeout: a 503.
            assert client.get("/me", headers=auth(token)).status_code == 200
            assert _last_used(token) == start + timedelta(seconds=5)  # skipped: held
            other.rollback()
        assert _windows(token) == [(window, 1), (window + 2, 1)]
        clock[0] += 1
        assert client.get("/me", headers=auth(token)).status_code == 200
        assert _windows(token) == [(window + 2, 2)]
        assert _last_used(token) == start + timedelta(seconds=126)
