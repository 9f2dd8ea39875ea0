"""Portable bulk SQL: `INSERT … ON CONFLICT` exists on PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean


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


def bound_or(session: Session, ids: list[Any], query: Any) -> Any:
    """`ids` where one statement can take them all (on PostgreSQL any number: `OneOf` binds
    one array; elsewhere IN_LIST), else the `query` that selects them."""
    if session.get_bind().dialect.name == "postgresql" or len(ids) <= IN_LIST:
        return ids
    return query


def in_parts(ids: Sequence[Any]) -> list[Sequence[Any]]:
    """The ids in parts small enough for one IN list each."""
    return [ids[i : i + IN_LIST] for i in range(0, len(ids), IN_LIST)]


class OneOf(ColumnElement[bool]):
    """`column IN (ids)` for a list of ids that may run to thousands: on PostgreSQL one
    array parameter (`column = ANY(…)`), elsewhere an IN list (SQLite binds a limited
    number of parameters: callers keep to IN_LIST ids). Each id bound apart is rendered,
    sent and parsed as a parameter of its own, and the statement's text differs with every
    length, so psycopg parses it afresh: for 3,300 stations' ids that took 35 ms where the
    array took 18 (coverage's missing teams, 2026-12-07)."""

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a condition as it is, not compared with 1 (SQLite)
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("listed", InternalTraversal.dp_clauseelement),
        ("array", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: Any, ids: Iterable[Any]) -> None:
        ids = list(ids)
        self.column = column
        self.listed = column.in_(ids)
        self.array = bindparam(None, ids, type_=postgresql.ARRAY(column.type))

    @property
    def _from_objects(self) -> list[Any]:
        """The column's table, for a statement's FROM, as `column.in_` gives it."""
        return list(self.column._from_objects)


@compiles(OneOf)
def _listed(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.listed, **kw)


@compiles(OneOf, "postgresql")
def _any_of_array(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} = ANY ({compiler.process(element.array, **kw)})"


def one_of(column: Any, ids: Any) -> Any:
    """`column` is one of `ids`: a list of them (`OneOf`), or a query of them."""
    return OneOf(column, ids) if isinstance(ids, (list, tuple, set)) else column.in_(ids)
