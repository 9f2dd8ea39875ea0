"""The connection pool: a connection is pinged only after it sat idle, and a dead one that
sat idle is replaced before a request gets it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Engine, MetaData, Table, Uuid, literal, select, text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from api import db, ratelimit
from api.services.sql import one_of
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
@pytest.mark.parametrize("pool", ["requests", "bookkeeping"])
def test_a_connection_the_database_dropped_while_idle_is_replaced_unseen(
    engine: Engine, pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both pools: the requests' and the rate-limit counters' and last-used times'."""
    assert BACKEND == "postgresql"
    if pool == "bookkeeping":
        engine = ratelimit._counter_engine(engine)
    with engine.connect() as conn:
        first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    killer = db.make_engine(engine.url.render_as_string(hide_password=False))
    with killer.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar()
    killer.dispose()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # as if it had sat idle for long
    with engine.connect() as conn:
        second = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    engine.dispose()
    assert second != first


@pytest.mark.postgres_only
def test_a_statement_sent_to_the_driver_fails_as_sqlalchemy_would_say(engine: Engine) -> None:
    """The intake's driver-level statements keep the error handling of the rest: a driver
    error is SQLAlchemy's (so a dead database is still a 503), and the pooled connection goes
    back to the pool as it came, out of autocommit."""
    with db.driver_autocommit(engine) as conn:
        assert conn.autocommit
        assert conn.execute("SELECT 41 + 1").fetchone()[0] == 42
    with pytest.raises(IntegrityError), db.driver_autocommit(engine) as conn:
        conn.execute("CREATE TEMPORARY TABLE t (k int PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1), (1)")
    with pytest.raises(ProgrammingError), db.driver_autocommit(engine) as conn:
        conn.execute(db.driver_sql(text("SELECT * FROM no_such_table WHERE k = :k")), {"k": 1})
    with engine.connect() as conn:  # the same pooled connection, as SQLAlchemy left it
        assert not conn.connection.driver_connection.autocommit
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_one_of_selects_the_listed_ids_sent_as_one_array_on_postgresql(engine: Engine) -> None:
    """`sql.one_of` selects the rows whose id is listed, for no id, a few, thousands and a
    query of them; on PostgreSQL the ids travel as one array, so that the statement's text
    is the same whatever their number."""
    table = Table(
        "one_of_ids", MetaData(), Column("id", Uuid, primary_key=True), prefixes=["TEMPORARY"]
    )
    ids = [uuid.uuid4() for _ in range(3000)]
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"id": i} for i in ids])
        texts = set()
        for wanted in ([], ids[:3], ids[:2500] + [uuid.uuid4()]):
            query = select(table.c.id).where(one_of(table.c.id, wanted))
            assert set(conn.execute(query).scalars()) == set(wanted) & set(ids)
            texts.add(str(query.compile(conn)))
        # The table is in FROM when the condition alone names it, as with `in_`.
        alone = select(literal(1)).where(one_of(table.c.id, ids[:3]))
        assert len(conn.execute(alone).all()) == 3
        chosen = select(table.c.id).where(table.c.id.in_(ids[:5]))
        query = select(table.c.id).where(one_of(table.c.id, chosen))
        assert set(conn.execute(query).scalars()) == set(ids[:5])
    if BACKEND == "postgresql":
        assert len(texts) == 1 and "= ANY (" in texts.pop()


@pytest.mark.postgres_only
def test_lists_of_ids_travel_as_binary_arrays_and_other_lists_as_before(engine: Engine) -> None:
    """psycopg wrote each id of a text array out in Python (18 ms for 6,500 ids); a list of
    ids goes in binary, any other list as text, and both come back as they went."""
    from psycopg import pq
    from psycopg.adapt import PyFormat, Transformer

    ids = [uuid.uuid4() for _ in range(3)]
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        dumpers = Transformer(raw)
        assert dumpers.get_dumper([None, *ids], PyFormat.AUTO).format == pq.Format.BINARY
        assert dumpers.get_dumper(["A-1", "B,2"], PyFormat.AUTO).format == pq.Format.TEXT
        got = conn.execute(
            text("SELECT CAST(:ids AS uuid[]), CAST(:codes AS text[]), CAST(:none AS uuid[])"),
            {"ids": [*ids, None], "codes": ["A-1", 'B,"2'], "none": []},
        ).one()
        assert tuple(got) == ([*ids, None], ["A-1", 'B,"2'], [])


@pytest.mark.postgres_only
def test_sessions_name_their_process_so_the_folds_can_be_told_apart(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pg_stat_activity` tells the API's sessions from those of `pollcheck fold`, in both
    pools (`make bench` splits PostgreSQL's CPU by it)."""
    name = text("SELECT current_setting('application_name')")
    for role in ("api", "fold"):
        monkeypatch.setattr(db, "_process_role", "api")
        db.set_process_role(role)
        engine = db.make_engine(database_url)
        try:
            for pool in (engine, ratelimit._counter_engine(engine)):
                with pool.connect() as conn:
                    assert conn.execute(name).scalar() == f"pollcheck {role}"
        finally:
            ratelimit._counter_engine(engine).dispose()
            engine.dispose()


def test_json_columns_are_read_by_orjson_and_what_it_refuses_by_json(engine: Engine) -> None:
    """A JSON value comes back as it went in, whichever parser reads it: orjson for what it
    reads (the counting figures, five times as fast), json for a number beyond a double,
    which PostgreSQL's jsonb holds and orjson refuses (it would fail the read)."""
    from models.base import JSONType

    cast = "CAST({} AS jsonb)" if engine.dialect.name == "postgresql" else "{}"
    with engine.connect() as conn:

        def read(doc: str) -> Any:
            query = text(f"SELECT {cast.format(':doc')} AS v").columns(v=JSONType)
            return conn.execute(query, {"doc": doc}).scalar_one()

        assert read('{"v1": 432, "blank": 5, "text": "Ф"}') == {"v1": 432, "blank": 5, "text": "Ф"}
        # jsonb keeps the number exactly, as its 401 digits; SQLite keeps the text.
        exact = 10**400 if engine.dialect.name == "postgresql" else float("inf")
        assert read('{"n": 1e400}') == {"n": exact}
    assert engine.dialect._json_deserializer is db.json_loads  # type: ignore[attr-defined]
