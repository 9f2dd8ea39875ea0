"""Engines and sessions: one transaction per request, a separate read session for dashboards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import create_engine

from api.config import Settings, get_settings


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use psycopg 3 for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    url = normalise_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
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

        return engine
    kwargs.update(
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=10,
        connect_args={
            "connect_timeout": 5,
            # No JIT: the findings queries are planned as large but run in well under a
            # second, and compiling took up to half a second of some of them (the incident
            # counts went from 0.54 to 0.27 s without it at 100,000 checklists).
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms} -c jit=off",
        },
    )
    return create_engine(url, **kwargs)


@lru_cache
def get_engine() -> Engine:
    s = get_settings()
    return make_engine(s.database_url, s)


@lru_cache
def get_read_engine() -> Engine:
    s = get_settings()
    if not s.read_database_url:
        return get_engine()
    return make_engine(s.read_database_url, s)


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
    for fn in (get_engine, get_read_engine):
        if fn.cache_info().currsize:
            fn().dispose()
        fn.cache_clear()
    _factory.cache_clear()
