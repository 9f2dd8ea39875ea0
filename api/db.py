"""Engines and sessions: one transaction per request, a separate read session for dashboards."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import orjson
from psycopg.adapt import PyFormat
from psycopg.types.array import ListBinaryDumper, ListDumper
from sqlalchemy import Engine, event, exc
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import create_engine

from api.config import Settings, get_settings


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use psycopg 3 for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def json_loads(data: str | bytes) -> Any:
    """A JSON column's value as the driver reads it: by orjson, which parsed it when a
    request brought it (`api.body`) and reads the counting view's figures five times as
    fast as `json` (1,000 of them per compute); by `json` for what orjson refuses and
    PostgreSQL's jsonb may hold (a number beyond a double, such as 1e400)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0

# What this process's PostgreSQL sessions call themselves (`application_name`), so that
# `pg_stat_activity` (and `make bench`'s CPU split) tells the fold's session from the API's.
_process_role = "api"


def set_process_role(role: str) -> None:
    """Name this process's database sessions `pollcheck <role>` (before the first engine is
    made: `pollcheck fold` calls it with "fold")."""
    global _process_role
    _process_role = role


def application_name() -> str:
    return f"pollcheck {_process_role}"


def ping_idle_connections(engine: Engine) -> Engine:
    """Check a pooled connection before use only when it has been idle for a while, as
    HikariCP does, rather than on every checkout (`pool_pre_ping`). The ping is a round trip
    and a statement for the database; under load each connection comes back to the pool
    within milliseconds, so a busy API never pings, and a connection that sat idle while the
    database restarted is still replaced before a request gets it. A connection the database
    dropped while it was busy fails its request (503, which a phone retries) and is
    replaced."""

    @event.listens_for(engine, "connect")
    def _connected(_: Any, record: Any) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(_: Any, record: Any) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, __: Any) -> None:
        idle_from = record.info.get("idle_from")
        if idle_from is not None and time.monotonic() - idle_from < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:  # the pool discards this connection and takes another
            raise exc.DisconnectionError(f"a pooled connection failed its ping: {e}") from e

    return engine


def make_engine(url: str, settings: Settings | None = None, pool_size: int | None = None) -> Engine:
    """An engine whose pool makes a request wait `db_pool_timeout_s` at most for a connection
    (then 503, never a 500 after a long stall). `pool_size`: a pool of that many and no
    overflow (the dashboards' own), instead of db_pool_size and db_max_overflow."""
    settings = settings or get_settings()
    url = normalise_url(url)
    kwargs: dict[str, Any] = {
        "pool_size": settings.db_pool_size if pool_size is None else pool_size,
        "max_overflow": settings.db_max_overflow if pool_size is None else 0,
        "pool_timeout": settings.db_pool_timeout_s,
        "json_deserializer": json_loads,
    }
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets readers run beside the writer; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return ping_idle_connections(engine)
    # No JIT: the findings queries are planned as large but run in well under a second, and
    # compiling took up to half a second of some of them (the incident counts went from 0.54
    # to 0.27 s without it at 100,000 checklists).
    options = f"-c statement_timeout={settings.db_statement_timeout_ms} -c jit=off"
    kwargs["connect_args"] = postgres_connect_args(settings, options)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _id_arrays_in_binary(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.adapters.register_dumper(list, IdListDumper)

    return ping_idle_connections(engine)


class IdListDumper(ListDumper):
    """A list of ids (`sql.one_of`'s array) sent to PostgreSQL as a binary array, other
    lists as before: psycopg wrote each id of a text array out in Python and quoted it,
    18 ms for the 6,500 missing stations that coverage lists at dawn on 100,000 stations,
    against 3 ms in binary."""

    def upgrade(self, obj: list[Any], format: PyFormat) -> Any:  # noqa: A002 (psycopg's name)
        first = next((item for item in obj if item is not None), None)
        if isinstance(first, uuid.UUID):
            return ListBinaryDumper(self.cls, self._tx).upgrade(obj, PyFormat.BINARY)
        return super().upgrade(obj, format)


def postgres_connect_args(settings: Settings, options: str) -> dict[str, Any]:
    """psycopg's connection arguments for a pool. Behind PgBouncer in transaction mode
    (`db_pgbouncer`) a session's settings cannot travel as startup `options` (PgBouncer
    refuses or drops them: they go on the role instead), and psycopg must not prepare
    statements: it prepares one it has run five times on a connection, and the next
    transaction may run on another server connection that never saw it."""
    args: dict[str, Any] = {"connect_timeout": 5, "application_name": application_name()}
    if settings.db_pgbouncer:
        args["prepare_threshold"] = None
    else:
        args["options"] = options
    return args


def driver_sql(statement: Any) -> str:
    """A prebuilt statement's SQL as psycopg takes it (`%(name)s` parameters), for
    `driver_autocommit`."""
    from sqlalchemy.dialects.postgresql.psycopg import dialect

    return str(statement.compile(dialect=dialect()))


@contextmanager
def driver_autocommit(engine: Engine) -> Iterator[Any]:
    """A pooled connection of `engine` as the driver's own, in autocommit, for statements
    that commit on their own on the busiest path: it skips SQLAlchemy's execution layer
    (a Connection, its execution context, parameter and result processing: about half a
    million instructions per statement, callgrind on `bench.cpu_per_post`, where a whole
    checklist post is about five million). The pool's checkout, its idle ping and its
    bookkeeping stay. A driver error comes out as SQLAlchemy's (IntegrityError,
    OperationalError…), and a connection the database dropped is invalidated, just as
    `Connection.execute` would do."""
    error = engine.dialect.loaded_dbapi.Error

    def translated(e: Exception, dropped: bool) -> exc.StatementError:
        return exc.DBAPIError.instance(
            None, None, e, error, connection_invalidated=dropped, dialect=engine.dialect
        )

    try:
        fairy = engine.raw_connection()
    except error as e:  # no connection to be had: the database is down or refuses
        raise translated(e, True) from e
    dbapi: Any = fairy.driver_connection  # psycopg's Connection
    try:
        before = dbapi.autocommit
        dbapi.autocommit = True
        try:
            yield dbapi
        finally:
            if not dbapi.closed:
                dbapi.autocommit = before
    except error as e:
        dropped = engine.dialect.is_disconnect(e, dbapi, None)
        if dropped:
            fairy.invalidate(e)
        raise translated(e, dropped) from e
    finally:
        fairy.close()


@lru_cache
def get_engine() -> Engine:
    s = get_settings()
    return make_engine(s.database_url, s)


@lru_cache
def get_read_engine() -> Engine:
    """Dashboards' reads: the replica if there is one, else a pool of their own on the
    primary (PostgreSQL), as many connections as `dashboard_threads`, so that a burst of
    findings requests cannot take the connections checklist intake needs. (SQLite keeps
    one pool: its readers do not wait on connections.)"""
    s = get_settings()
    if s.read_database_url:
        return make_engine(s.read_database_url, s, pool_size=max(1, s.dashboard_threads))
    main = get_engine()
    if main.dialect.name != "postgresql":
        return main
    return make_engine(s.database_url, s, pool_size=max(1, s.dashboard_threads))


@lru_cache
def _factory(read: bool) -> sessionmaker[Session]:
    engine = get_read_engine() if read else get_engine()
    if read and engine.dialect.name == "postgresql":
        # Under READ COMMITTED every statement takes its own snapshot, transaction or not:
        # without BEGIN and COMMIT a dashboard's poll makes two round trips fewer, and
        # each trip under load is a wait for the worker's GIL. (SQLite keeps one snapshot
        # per transaction, which its readers rely on.)
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


def new_session(read: bool = False) -> Session:
    """A session on the main (or read) database; it connects on its first statement."""
    return _factory(read)()


def autocommits(session: Session) -> bool:
    """Does every statement of this session commit on its own (a PostgreSQL read session)?"""
    return session.get_bind().get_execution_options().get("isolation_level") == "AUTOCOMMIT"


@contextmanager
def session_scope(read: bool = False) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = new_session(read)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engines() -> None:
    """Forget cached engines (tests and the CLI switch databases)."""
    for fn in (get_read_engine, get_engine):
        if fn.cache_info().currsize:
            fn().dispose()
        fn.cache_clear()
    _factory.cache_clear()
