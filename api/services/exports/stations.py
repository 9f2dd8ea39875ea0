"""Stations with coverage: each station with its place, coordinates, the phases observed,
its checklists and critical answers (the counting ones, under the findings' filters), for
QGIS, a web map or a spreadsheet. Stations not observed at all are listed too: the gaps are
what a coverage map is for."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import case, false, func, or_, select
from sqlalchemy.orm import Session

from api.services.exports.checklists import PLACE_LEVELS, _places
from api.services.exports.common import (
    BOOL,
    FLOAT,
    INT,
    Column,
    Export,
    Kind,
    Options,
    Table,
    describe,
    mission_info,
    version_of,
)
from api.services.findings.fold import FC
from api.services.findings.scope import CL, LOC, ST, Filters, Scope, checklist_predicate, resolve
from models.checklist import Phase

PHASES = [p.value for p in Phase]
STATION_COLUMNS = [
    Column("station_id"),
    Column("station_code"),
    Column("station_name"),
    *[Column(level) for level in PLACE_LEVELS],
    Column("location_path"),
    Column("abroad", BOOL),
    Column("registered_voters", INT),
    Column("latitude", FLOAT),
    Column("longitude", FLOAT),
    Column("checklists", INT),
    *[Column(f"{p}_checklists", INT) for p in PHASES],
    Column("phases_observed"),
    Column("critical_answers", INT),
]


def select_stations(scope: Scope) -> Any:
    """Stations of the scope's place, each with its counting checklists and critical answers
    under the scope's other filters."""
    pred = checklist_predicate(scope) if not scope.empty else false()
    per_phase = [func.sum(case((CL.c.phase == p, 1), else_=0)).label(p) for p in PHASES]
    seen = (
        select(CL.c.station_id, func.count().label("n"), *per_phase)
        .where(pred)
        .group_by(CL.c.station_id)
        .subquery("seen")
    )
    crit = (
        select(CL.c.station_id, func.count().label("n"))
        .select_from(FC.join(CL, CL.c.id == FC.c.checklist_id))
        .where(FC.c.mission_id == scope.mission_id, pred)
        .group_by(CL.c.station_id)
        .subquery("crit")
    )
    q = (
        select(
            ST.c.id,
            ST.c.code,
            ST.c.name,
            ST.c.location_id,
            LOC.c.path,
            ST.c.abroad,
            ST.c.registered_voters,
            ST.c.latitude,
            ST.c.longitude,
            func.coalesce(seen.c.n, 0).label("checklists"),
            *[func.coalesce(seen.c[p], 0).label(p) for p in PHASES],
            func.coalesce(crit.c.n, 0).label("critical"),
        )
        .select_from(
            ST.join(LOC, LOC.c.id == ST.c.location_id)
            .outerjoin(seen, seen.c.station_id == ST.c.id)
            .outerjoin(crit, crit.c.station_id == ST.c.id)
        )
        .where(ST.c.mission_id == scope.mission_id)
        .order_by(ST.c.code)
    )
    if scope.filters.abroad is not None:
        q = q.where(ST.c.abroad.is_(scope.filters.abroad))
    if scope.location_path is not None:
        q = q.where(
            or_(
                LOC.c.path == scope.location_path,
                LOC.c.path.startswith(scope.location_path + "/", autoescape=True),
            )
        )
    if scope.empty:
        q = q.where(false())
    return q


def rows(
    session: Session,
    mission_id: uuid.UUID,
    scope: Scope,
    narrow: Callable[[Any], Any] | None = None,
) -> Iterator[tuple[Any, ...]]:
    places = _places(session, mission_id)
    no_place = (None,) * len(PLACE_LEVELS)
    q = select_stations(scope)
    if narrow is not None:
        q = narrow(q)
    for r in session.execute(q.execution_options(stream_results=True, yield_per=1000)):
        counts = [int(r._mapping[p]) for p in PHASES]
        yield (
            str(r.id), r.code, r.name, *places.get(r.location_id, no_place), r.path,
            r.abroad, r.registered_voters, r.latitude, r.longitude, int(r.checklists),
            *counts, " ".join(p for p, n in zip(PHASES, counts, strict=True) if n),
            int(r.critical),
        )  # fmt: skip


def export(session: Session, mission_id: uuid.UUID, filters: Filters, options: Options) -> Export:
    mission = mission_info(session, mission_id)
    scope = resolve(session, mission_id, filters)
    version = version_of(session, mission_id)
    title, stem = describe(Kind.stations, mission, filters, options, version)
    table = Table("stations", STATION_COLUMNS, rows(session, mission_id, scope))
    return Export(
        Kind.stations, mission_id, title, stem, [table], version,
        {"filters": filters.key(), "mission_id": str(mission_id)},
    )  # fmt: skip
