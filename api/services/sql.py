"""Portable bulk SQL: `INSERT … ON CONFLICT` exists on PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_insert(session: Session, table: Table) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def object_agg(session: Session) -> Any:
    """The aggregate that builds a JSON object of name-value pairs: PostgreSQL's
    `jsonb_object_agg`, SQLite's `json_group_object`."""
    if session.get_bind().dialect.name == "postgresql":
        return func.jsonb_object_agg
    return func.json_group_object


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    only_if: Callable[[Any], Any] | None = None,
) -> None:
    """Insert rows, updating `update` columns where the `keys` already exist; with
    `only_if`, only where it holds (given the proposed row, `excluded`)."""
    if not rows:
        return
    stmt = dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: getattr(stmt.excluded, c) for c in update},
        where=None if only_if is None else only_if(stmt.excluded),
    )
    session.execute(stmt, list(rows))


def insert_ignore(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows; rows whose `keys` already exist are left as they are."""
    if not rows:
        return
    stmt = dialect_insert(session, table).on_conflict_do_nothing(index_elements=list(keys))
    session.execute(stmt, list(rows))


IN_LIST = 5000  # ids bound in one IN list at most (SQLite binds 32,766, PostgreSQL 65,535)


def in_parts(ids: Sequence[Any]) -> list[Sequence[Any]]:
    """The ids in parts small enough for one IN list each."""
    return [ids[i : i + IN_LIST] for i in range(0, len(ids), IN_LIST)]
