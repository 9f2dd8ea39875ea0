"""Alembic environment: the database URL comes from the settings (or the caller's config)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import models
from api.config import get_settings
from api.db import make_engine, normalise_url

config = context.config
target_metadata = models.metadata


def _url() -> str:
    return normalise_url(config.attributes.get("database_url") or get_settings().database_url)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            if conn.dialect.name == "postgresql":
                # A migration that fills a column in or builds an index on a national
                # mission takes longer than a request may (POLLCHECK_DB_STATEMENT_TIMEOUT_MS):
                # 0014's backfill of a million checklists was cancelled at 30 s.
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
