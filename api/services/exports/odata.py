"""An OData v4 feed of checklists and stations, for Excel's and Power BI's "OData feed".

What a BI tool needs and no more: a service document, `$metadata` in CSDL (the columns of
the exports, typed), and entity sets that take `$select`, `$top`, `$skip`, `$count` and a
`$filter` of comparisons joined by `and` on received/observed time, phase, place, review
state and a few more. Pages are server-driven: at most `page_size` rows, and an
`@odata.nextLink` whose `$skiptoken` is the last row's sort key (keyset paging: a page
costs the same at row 1,000 as at row 1,000,000, and rows arriving meanwhile are not
skipped or repeated).
"""

from __future__ import annotations

import base64
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from api.errors import AppError
from api.kit.spreadsheet import safe_cell
from api.services.exports import checklists, stations
from api.services.exports.common import (
    BOOL,
    DATETIME,
    FLAG,
    FLOAT,
    INT,
    TEXT,
    TIME,
    Column,
    MissionInfo,
    Options,
)
from api.services.findings.scope import CL, LOC, OBS, ST, TEAM, TPL, Filters, Scope

NS = "Pollcheck"
EDM = {
    TEXT: "Edm.String",
    INT: "Edm.Int64",
    FLAG: "Edm.Int32",
    FLOAT: "Edm.Double",
    BOOL: "Edm.Boolean",
    DATETIME: "Edm.DateTimeOffset",
    TIME: "Edm.TimeOfDay",
}
ENTITY_SETS = {"Checklists": "Checklist", "Stations": "Station"}


class ODataError(AppError):
    """A query the feed does not understand: 400, naming the option."""

    status_code = 400
    error = "BadRequest"


def bad_query(option: str, message: str) -> ODataError:
    return ODataError(
        f"{option}: {message}",
        code="odata_query",
        errors=[{"path": ["query", option], "code": "odata_query", "message": message}],
    )


# --- the entity types -------------------------------------------------------------------


def checklist_columns(session: Session, mission_id: uuid.UUID) -> list[Column]:
    questions = checklists.questions_of(session, mission_id, Filters())
    return checklists.META_COLUMNS + checklists.answer_columns(questions)


def metadata_xml(entity_types: dict[str, list[Column]]) -> bytes:
    """CSDL (OData v4 XML) for the given entity types, keyed on their first column."""
    edmx = ET.Element(
        "edmx:Edmx", {"xmlns:edmx": "http://docs.oasis-open.org/odata/ns/edmx", "Version": "4.0"}
    )
    services = ET.SubElement(edmx, "edmx:DataServices")
    schema = ET.SubElement(
        services, "Schema", {"xmlns": "http://docs.oasis-open.org/odata/ns/edm", "Namespace": NS}
    )
    container = ET.Element("EntityContainer", {"Name": NS})
    for set_name, type_name in ENTITY_SETS.items():
        columns = entity_types.get(set_name)
        if columns is None:
            continue
        et = ET.SubElement(schema, "EntityType", {"Name": type_name})
        key = ET.SubElement(et, "Key")
        ET.SubElement(key, "PropertyRef", {"Name": columns[0].name})
        for i, c in enumerate(columns):
            attrs = {"Name": c.name, "Type": EDM[c.type]}
            if i == 0:
                attrs["Nullable"] = "false"
            ET.SubElement(et, "Property", attrs)
        ET.SubElement(container, "EntitySet", {"Name": set_name, "EntityType": f"{NS}.{type_name}"})
    schema.append(container)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(edmx, encoding="utf-8")


# --- $filter ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<dt>\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))"
    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def _place(level: str, top: bool) -> Callable[[Any, Any], Any]:
    """A place level's name as a condition on the station (top levels: its region_id)."""

    def cond(op: Callable[[Any, Any], Any], value: Any) -> Any:
        loc = LOC.alias(f"odata_{level}")
        names = select(loc.c.id).where(loc.c.kind == level, op(loc.c.name, value))
        return (ST.c.region_id if top else ST.c.location_id).in_(names)

    return cond


def _column(col: Any) -> Callable[[Any, Any], Any]:
    def cond(op: Callable[[Any, Any], Any], value: Any) -> Any:
        return op(col, value)

    return cond


Filter = tuple[Callable[[Any, Any], Any], type]
PLACE_FILTERS: dict[str, Filter] = {
    "region": (_place("region", True), str),
    "country": (_place("country", True), str),
    "district": (_place("district", False), str),
    "city": (_place("city", False), str),
    "post": (_place("post", False), str),
    "station_code": (_column(ST.c.code), str),
}
CHECKLIST_FILTERS: dict[str, Filter] = PLACE_FILTERS | {
    "received_at_utc": (_column(CL.c.received_at), datetime),
    "observed_at_utc": (_column(CL.c.observed_at), datetime),
    "phase": (_column(CL.c.phase), str),
    "review_state": (_column(CL.c.review_state), str),
    "quarantined": (_column(CL.c.quarantined), bool),
    "template": (_column(TPL.c.code), str),
    "team": (_column(TEAM.c.name), str),
    "observer_code": (_column(OBS.c.code), str),
    "version": (_column(CL.c.version), int),
}
STATION_FILTERS: dict[str, Filter] = PLACE_FILTERS | {"abroad": (_column(ST.c.abroad), bool)}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda a, b: a == b if b is not None else a.is_(None),
    "ne": lambda a, b: a != b if b is not None else a.is_not(None),
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def parse_filter(text: str, allowed: dict[str, Filter]) -> list[Any]:
    """`prop op literal [and prop op literal …]` as SQL conditions (400 for anything else)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise bad_query("$filter", f"cannot read {text[pos : pos + 20]!r}")
        kind = m.lastgroup or "word"
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    conds = []
    i = 0
    while i < len(tokens):
        if i + 3 > len(tokens):
            raise bad_query("$filter", "expected `property operator value`")
        (pk, prop), (ok, op), (vk, raw) = tokens[i], tokens[i + 1], tokens[i + 2]
        if pk != "word" or prop not in allowed:
            names = ", ".join(sorted(allowed))
            raise bad_query("$filter", f"cannot filter on {prop!r}; filterable: {names}")
        if ok != "word" or op not in _OPS:
            raise bad_query(
                "$filter", f"unknown operator {op!r}; use eq ne gt ge lt le (joined by and)"
            )
        cond, wanted = allowed[prop]
        value = _literal(vk, raw)
        if value is None and op not in ("eq", "ne"):
            raise bad_query("$filter", f"null only compares with eq or ne ({prop} {op} null)")
        if value is not None and not (
            type(value) is wanted or (wanted is datetime and isinstance(value, datetime))
        ):
            raise bad_query("$filter", f"{prop} compares with {_KINDS[wanted]}, not {raw!r}")
        conds.append(cond(_COMPARE[op], value))
        i += 3
        if i < len(tokens):
            if tokens[i] != ("word", "and"):
                raise bad_query(
                    "$filter", f"expected `and`, got {tokens[i][1]!r} (only and is supported)"
                )
            i += 1
            if i >= len(tokens):
                raise bad_query("$filter", "nothing after `and`")
    return conds


_KINDS = {
    str: "text in quotes ('voting')",
    datetime: "a date and time (2026-03-15T08:00:00Z)",
    bool: "true or false",
    int: "a whole number",
}


def _literal(kind: str, raw: str) -> Any:
    if kind == "str":
        return raw[1:-1].replace("''", "'")
    if kind == "dt":
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as exc:
            raise bad_query("$filter", f"{raw!r} is not a date and time") from exc
    if kind == "num":
        return float(raw) if "." in raw else int(raw)
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "null":
        return None
    raise bad_query("$filter", f"{raw!r} is not a value: quote text as 'text'")


# --- pages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """The OData system query options of one request."""

    select: list[str] | None = None
    top: int | None = None
    skip: int = 0
    count: bool = False
    filter: str | None = None
    skiptoken: str | None = None


@dataclass(slots=True)
class Page:
    rows: list[dict[str, Any]]
    count: int | None
    next_token: str | None
    remaining_top: int | None


def _json(value: Any, column: Column) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if column.type in (INT, FLOAT, TIME):  # "na" in a number or time column
            return None
        return safe_cell(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if column.type == BOOL:
        return bool(value)
    return value


def _encode(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def _decode(token: str) -> list[str]:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split("|")
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_query("$skiptoken", "not a token this feed made") from exc


def _selected(columns: list[Column], chosen: list[str] | None) -> list[int]:
    if chosen is None:
        return list(range(len(columns)))
    names = [c.name for c in columns]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise bad_query("$select", f"no properties {unknown}")
    return [names.index(n) for n in chosen]


def _page(
    rows: Iterator[tuple[Any, ...]],
    columns: list[Column],
    query: Query,
    size: int,
    key: Callable[[tuple[Any, ...]], str],
) -> tuple[list[dict[str, Any]], str | None]:
    keep = _selected(columns, query.select)
    out: list[dict[str, Any]] = []
    last: tuple[Any, ...] | None = None
    more = False
    for row in rows:
        if len(out) == size:
            more = True
            break
        out.append({columns[i].name: _json(row[i], columns[i]) for i in keep})
        last = row
    if hasattr(rows, "close"):
        rows.close()
    return out, key(last) if more and last is not None else None


def checklist_page(
    session: Session, mission: MissionInfo, scope: Scope, query: Query, size: int
) -> Page:
    """A page of the latest version of each checklist, oldest received first."""
    questions = checklists.questions_of(session, mission.id, Filters())
    columns = checklists.META_COLUMNS + checklists.answer_columns(questions)
    _selected(columns, query.select)
    conds = parse_filter(query.filter, CHECKLIST_FILTERS) if query.filter else []
    limit = size if query.top is None else min(size, query.top)
    total = None
    if query.count:
        base = checklists.select_checklists(scope, "latest").where(*conds).order_by(None)
        total = session.scalar(select(func.count()).select_from(base.subquery())) or 0

    def narrow(q: Any) -> Any:
        q = q.where(*conds)
        if query.skiptoken:
            at, cid = _decode(query.skiptoken)
            when, ident = datetime.fromisoformat(at), uuid.UUID(cid)
            q = q.where(or_(CL.c.received_at > when,
                            and_(CL.c.received_at == when, CL.c.id > ident)))  # fmt: skip
        elif query.skip:
            q = q.offset(query.skip)
        return q.limit(limit + 1)

    rows = checklists.rows(session, mission, scope, Options(), questions, narrow)
    received = [c.name for c in columns].index("received_at_utc")
    got, token = _page(rows, columns, query, limit,
                       lambda r: _encode(r[received].isoformat(), r[0]))  # fmt: skip
    return Page(got, total, token, None if query.top is None else query.top - len(got))


def station_page(
    session: Session, mission: MissionInfo, scope: Scope, query: Query, size: int
) -> Page:
    """A page of stations with their coverage, by station code."""
    columns = stations.STATION_COLUMNS
    _selected(columns, query.select)
    conds = parse_filter(query.filter, STATION_FILTERS) if query.filter else []
    limit = size if query.top is None else min(size, query.top)
    total = None
    if query.count:
        base = stations.select_stations(scope).where(*conds).order_by(None)
        total = session.scalar(select(func.count()).select_from(base.subquery())) or 0

    def narrow(q: Any) -> Any:
        q = q.where(*conds)
        if query.skiptoken:
            q = q.where(ST.c.code > _decode(query.skiptoken)[0])
        elif query.skip:
            q = q.offset(query.skip)
        return q.limit(limit + 1)

    rows = stations.rows(session, mission.id, scope, narrow)
    got, token = _page(rows, columns, query, limit, lambda r: _encode(r[1]))
    return Page(got, total, token, None if query.top is None else query.top - len(got))


def count_only(session: Session, entity_set: str, scope: Scope, filter_text: str | None) -> int:
    """`/Checklists/$count` and `/Stations/$count`."""
    if entity_set == "Checklists":
        conds = parse_filter(filter_text, CHECKLIST_FILTERS) if filter_text else []
        base = checklists.select_checklists(scope, "latest")
    else:
        conds = parse_filter(filter_text, STATION_FILTERS) if filter_text else []
        base = stations.select_stations(scope)
    q = base.where(*conds).order_by(None)
    return int(session.scalar(select(func.count()).select_from(q.subquery())) or 0)
