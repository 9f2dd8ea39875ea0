"""The connection pool: a connection is pinged only after it sat idle, and a dead one that
sat idle is replaced before a request gets it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from api import db
from tests.conftest import BACKEND


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = db.make_engine(database_url)
    yield made
    made.dispose()


@pytest.fixture
def pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per ping the pool makes."""
    made: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        made.append(1)
        return real(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return made


def _use(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_a_connection_back_from_a_request_moments_ago_is_not_pinged(
    engine: Engine, pings: list[int]
) -> None:
    for _ in range(20):
        _use(engine)
    assert pings == []


def test_a_connection_idle_past_the_window_is_pinged_once_per_checkout(
    engine: Engine, pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(engine)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    _use(engine)
    _use(engine)
    assert len(pings) == 2


@pytest.mark.postgres_only
def test_a_connection_the_database_dropped_while_idle_is_replaced_unseen(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert BACKEND == "postgresql"
    with engine.connect() as conn:
        first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    killer = db.make_engine(engine.url.render_as_string(hide_password=False))
    with killer.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar()
    killer.dispose()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # as if it had sat idle for long
    with engine.connect() as conn:
        second = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    assert second != first
