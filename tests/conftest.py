"""Test set-up: one fresh database per run (SQLite file or a new PostgreSQL database), built
by Alembic; every table emptied after each test.

POLLCHECK_TEST_DB=sqlite (default) or postgresql picks the backend; POLLCHECK_TEST_PG_URL
names the PostgreSQL server (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKEND = os.environ.get("POLLCHECK_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("POLLCHECK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_TMP = Path(tempfile.mkdtemp(prefix="pollcheck-test-"))


def _pg_url(dbname: str) -> str:
    from sqlalchemy.engine import make_url

    from api.db import normalise_url

    return (
        make_url(normalise_url(PG_ADMIN_URL))
        .set(database=dbname)
        .render_as_string(hide_password=False)
    )


if BACKEND == "postgresql":
    TEST_DB_NAME = f"pollcheck_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    os.environ["POLLCHECK_DATABASE_URL"] = _pg_url(TEST_DB_NAME)
else:
    TEST_DB_NAME = ""
    os.environ["POLLCHECK_DATABASE_URL"] = f"sqlite:///{_TMP / 'test.db'}"
os.environ["POLLCHECK_ENVIRONMENT"] = "test"
# In-process clients read a response to its end: their event streams end once caught up
# (tests of live streams start servers with a longer life).
os.environ["POLLCHECK_EVENTS_STREAM_MAX_S"] = "0"
os.environ["POLLCHECK_ATTACHMENTS_DIR"] = str(_TMP / "attachments")
os.environ.pop("POLLCHECK_READ_DATABASE_URL", None)


def _admin_execute(sql: str) -> None:
    import psycopg

    from api.db import normalise_url

    url = normalise_url(PG_ADMIN_URL).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from api import migrate
    from api.db import reset_engines

    url = os.environ["POLLCHECK_DATABASE_URL"]
    if BACKEND == "postgresql":
        _admin_execute(f'CREATE DATABASE "{TEST_DB_NAME}"')
    migrate.upgrade(url)
    yield url
    reset_engines()
    if BACKEND == "postgresql":
        _admin_execute(f'DROP DATABASE IF EXISTS "{TEST_DB_NAME}" WITH (FORCE)')


def _empty_tables() -> None:
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import OperationalError

    import models
    from api.db import get_engine

    engine = get_engine()
    existing = set(inspect(engine).get_table_names())
    tables = [t.name for t in reversed(models.metadata.sorted_tables) if t.name in existing]
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    # Only the tables the test wrote to: a TRUNCATE makes new files for every
                    # table it names (65 ms for all of them, most of them empty, after every
                    # test). The sequences start again as RESTART IDENTITY would have them.
                    held = conn.scalars(
                        text(
                            " UNION ALL ".join(
                                f"SELECT '{t}' WHERE EXISTS (SELECT FROM \"{t}\")" for t in tables
                            )
                        )
                    ).all()
                    if held:
                        names = ", ".join(f'"{t}"' for t in held)
                        conn.execute(text(f"TRUNCATE {names} CASCADE"))
                    conn.execute(
                        text(
                            "SELECT setval(oid, 1, false) FROM pg_class"
                            " WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace"
                        )
                    )
                else:
                    for t in tables:
                        conn.execute(text(f'DELETE FROM "{t}"'))
            return
        except OperationalError as e:
            # A real server of a module-scoped fixture (the browser tests') keeps folding
            # in the background: its fold and the TRUNCATE can take their locks in opposite
            # orders, and PostgreSQL then cancels one of them. Try again.
            if getattr(e.orig, "sqlstate", None) != "40P01" or attempt == 4:
                raise
            time.sleep(0.2)


@pytest.fixture
def db(database_url: str) -> Iterator[None]:
    """A migrated database, emptied after the test."""
    from api import ratelimit
    from api.services import templates

    yield
    _empty_tables()
    # Emptying tables deletes published templates, which production never does.
    templates.forget_published()
    # And the limits' buckets: what this process remembers of them goes too.
    ratelimit.forget_addresses()
    ratelimit.forget_mission()


@pytest.fixture
def session(db: None) -> Iterator[object]:
    from api.db import session_scope

    with session_scope() as s:
        yield s


@pytest.fixture
def client(db: None) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def pytest_report_header() -> str:
    return f"pollcheck test database: {BACKEND} ({os.environ['POLLCHECK_DATABASE_URL']})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND == "postgresql":
        # The pages drive the same API on either database, and the API's tests run on both:
        # the browser tests (two minutes) run once, in the SQLite pass, as `make run` serves
        # them, which keeps `make test`'s two passes within CI's ten minutes.
        once = pytest.mark.skip(reason="browser tests run in the SQLite pass of make test")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(once)
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (runs in the postgresql pass of make test)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)
