"""Alembic is the only source of the schema: prove the models agree and downgrades work."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import models
from api import migrate
from api.db import get_engine, normalise_url


def test_migrated_database_matches_the_models(database_url: str) -> None:
    with get_engine().connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), models.metadata
        )
    assert diff == [], f"models and migrations disagree: {diff}"


def test_every_migration_downgrades_and_upgrades_again(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'roundtrip.db'}"
    else:
        # A second database of its own, so that the shared test database stays intact.
        from tests.conftest import _admin_execute, _pg_url

        name = f"pollcheck_roundtrip_{os.getpid()}"
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}"')
        _admin_execute(f'CREATE DATABASE "{name}"')
        url = _pg_url(name)
    try:
        migrate.upgrade(url)
        migrate.downgrade(url, "base")
        engine = create_engine(normalise_url(url))
        with engine.connect() as conn:
            left = set(inspect(conn).get_table_names()) - {"alembic_version"}
        engine.dispose()
        assert left == set(), f"downgrade left tables behind: {left}"
        migrate.upgrade(url)
    finally:
        if not url.startswith("sqlite"):
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
