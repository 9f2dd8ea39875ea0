"""Findings long, for pivot tables: answers per place, phase and question; counting reports
with their checks; incident reports; critical answers.

The figures are the findings views' own (`questions.tallies` and `questions.build`, the
counting checks' SQL), so a pivot of an export and the dashboard never disagree. Findings
are given for the place asked for and each place one level below it: the whole mission and
its regions (or countries abroad), a region and its districts, and so on.
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import time
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, false, select
from sqlalchemy.orm import Session

from api.config import Settings
from api.services.exports.common import (
    DATETIME,
    FLOAT,
    INT,
    TIME,
    Column,
    Export,
    Kind,
    MissionInfo,
    Options,
    Table,
    describe,
    mission_info,
    version_of,
)
from api.services.findings import counting as counting_service
from api.services.findings import questions as question_service
from api.services.findings import sections, views
from api.services.findings.scope import CL, LOC, ST, Filters, Scope, checklist_predicate, resolve
from api.services.findings.stats import read_settings
from models.views import (
    ChoiceFindings,
    CountingSection,
    CriticalSection,
    IncidentsSection,
    IntegerFindings,
    ScaleFindings,
)

FINDINGS_COLUMNS = [
    Column("place"),
    Column("place_kind"),
    Column("phase"),
    Column("section"),
    Column("question"),
    Column("question_label"),
    Column("question_type"),
    Column("answer"),
    Column("answer_label"),
    Column("count", INT),
    Column("denominator", INT),
    Column("share", FLOAT),
    Column("stations", INT),
    Column("critical_answer", INT),
    Column("total", INT),
]


def _child_places(session: Session, scope: Scope) -> list[tuple[str, str]]:
    """(path, kind) of every place one level below the scope's place."""
    q = select(LOC.c.path, LOC.c.kind).where(LOC.c.mission_id == scope.mission_id)
    if scope.location_id is not None:
        q = q.where(LOC.c.parent_id == scope.location_id)
    else:
        q = q.where(LOC.c.parent_id.is_(None))
        if scope.filters.abroad is not None:
            q = q.where(LOC.c.abroad.is_(scope.filters.abroad))
    return [(r.path, str(r.kind)) for r in session.execute(q.order_by(LOC.c.path))]


def _scope_name(scope: Scope) -> tuple[str, str]:
    if scope.location_path is not None:
        return scope.location_path, "place"
    if scope.filters.abroad is None:
        return "(all)", "mission"
    return ("(abroad)" if scope.filters.abroad else "(in country)"), "mission"


def findings_rows(
    session: Session, mission: MissionInfo, scope: Scope, language: str
) -> Iterator[tuple[Any, ...]]:
    cfg, _ = read_settings(mission.settings)
    random_sample = mission.sampling == "random"
    questions = question_service.catalog(session, mission.id, language)
    places = [(_scope_name(scope), scope)]
    for path, kind in _child_places(session, scope):
        child = resolve(session, mission.id, replace(scope.filters, location=path))
        places.append(((path, kind), child))
    for (place, kind), place_scope in places:
        data = question_service.tallies(session, place_scope)
        built = question_service.build(data, questions, cfg, random_sample)
        for phase in built.phases:
            for item in phase.questions:
                info = questions[item.code]
                head = (place, kind, phase.phase, info.section, item.code, item.label,
                        item.type)  # fmt: skip
                if not isinstance(item, ChoiceFindings | ScaleFindings):
                    total = item.total if isinstance(item, IntegerFindings) else None
                    yield (*head, None, None, item.answered, phase.observations, None,
                           item.stations, item.critical, total)  # fmt: skip
                    continue
                for a in item.answers:
                    yield (*head, a.value, a.label, a.count, item.answered,
                           a.share, a.stations, 1 if a.critical else 0,
                           None)  # fmt: skip


def counting_table(session: Session, mission: MissionInfo, scope: Scope) -> Table:
    cfg, _ = read_settings(mission.settings)
    found = counting_service.every_report(session, scope, cfg)
    if found is None:
        return Table("counting", [Column("checklist_id")], iter(()))
    names, result = found
    typed = {"received_at": DATETIME, "checklist_id": "text", "station": "text",
             "review_state": "text"}  # fmt: skip
    columns = [Column(n, typed.get(n, INT)) for n in names]

    def rows() -> Iterator[tuple[Any, ...]]:
        for r in result:
            yield (str(r[0]), *r[1:])

    return Table("counting", columns, rows())


def incidents_table(session: Session, mission: MissionInfo, scope: Scope, language: str) -> Table:
    """One row per incident report, with its type, source, time and description."""
    questions = question_service.catalog(session, mission.id, language)
    iq = question_service.incident_questions(questions)
    names = ["type", "source", "time", "description"]
    columns = [
        Column("checklist_id"),
        Column("station_code"),
        Column("place"),
        Column("observed_at_utc", DATETIME),
        Column("observed_at_local", DATETIME),
        Column("type"),
        Column("type_label"),
        Column("critical", INT),
        Column("source"),
        Column("time", TIME),
        Column("description"),
    ]
    if scope.filters.phase not in (None, "incident"):
        return Table("incidents", columns, iter(()))
    pred = checklist_predicate(scope, phase=False) if not scope.empty else false()
    q = (
        select(
            CL.c.id,
            ST.c.code,
            LOC.c.path,
            CL.c.observed_at,
            *[
                sections._answer_of(iq[n].code if n in iq else None, CL.c.id).label(n)  # noqa: SLF001
                for n in names
            ],
        )
        .select_from(
            CL.join(ST, ST.c.id == CL.c.station_id).join(LOC, LOC.c.id == ST.c.location_id)
        )
        .where(pred, CL.c.phase == "incident")
        .order_by(CL.c.observed_at, CL.c.id)
    )
    zone = zoneinfo.ZoneInfo(mission.timezone)
    type_labels = iq["type"].options if "type" in iq else {}
    critical = iq["type"].critical if "type" in iq else frozenset()

    def rows() -> Iterator[tuple[Any, ...]]:
        for r in session.execute(q.execution_options(stream_results=True, yield_per=1000)):
            at = _clock(r.time)
            yield (str(r.id), r.code, r.path, r.observed_at, r.observed_at.astimezone(zone),
                   r.type, type_labels.get(r.type, r.type) if r.type else None,
                   1 if r.type in critical else 0, r.source, at, r.description)  # fmt: skip

    return Table("incidents", columns, rows())


def _clock(value: str | None) -> Any:
    if value is None or len(value) != 5 or value[2] != ":":
        return value
    return time(int(value[:2]), int(value[3:]))


def critical_table(session: Session, mission: MissionInfo, scope: Scope, language: str) -> Table:
    """One row per critical answer of a counting checklist."""
    from api.services.findings.fold import FC

    questions = question_service.catalog(session, mission.id, language)
    columns = [
        Column("checklist_id"),
        Column("station_code"),
        Column("place"),
        Column("phase"),
        Column("observed_at_utc", DATETIME),
        Column("observed_at_local", DATETIME),
        Column("question"),
        Column("question_label"),
        Column("answer"),
        Column("answer_label"),
    ]
    pred = checklist_predicate(scope) if not scope.empty else false()
    q = (
        select(
            FC.c.checklist_id,
            ST.c.code,
            LOC.c.path,
            CL.c.phase,
            CL.c.observed_at,
            FC.c.question_code,
            FC.c.value,
        )  # fmt: skip
        .select_from(
            FC.join(CL, CL.c.id == FC.c.checklist_id)
            .join(ST, ST.c.id == CL.c.station_id)
            .join(LOC, LOC.c.id == ST.c.location_id)
        )
        .where(and_(FC.c.mission_id == scope.mission_id, pred))
        .order_by(CL.c.observed_at, FC.c.checklist_id, FC.c.question_code, FC.c.value)
    )
    zone = zoneinfo.ZoneInfo(mission.timezone)

    def rows() -> Iterator[tuple[Any, ...]]:
        for r in session.execute(q.execution_options(stream_results=True, yield_per=1000)):
            info = questions.get(r.question_code)
            yield (str(r.checklist_id), r.code, r.path, r.phase, r.observed_at,
                   r.observed_at.astimezone(zone), r.question_code,
                   info.label if info else None, r.value,
                   info.options.get(r.value, r.value) if info else None)  # fmt: skip

    return Table("critical", columns, rows())


def _summary(name: str, items: Sequence[BaseModel], keys: list[str]) -> Table:
    """A view's list as a table of the fields `keys` names."""
    columns = [Column(k, INT if k in ("count", "failed", "checked", "observed", "reported",
                                      "stations") else "text") for k in keys]  # fmt: skip
    return Table(name, columns, iter([tuple(getattr(i, k) for k in keys) for i in items]))


def export(
    session: Session,
    settings: Settings,
    kind: Kind,
    mission_id: uuid.UUID,
    filters: Filters,
    options: Options,
) -> Export:
    """A findings-level export (findings, counting, incidents or critical)."""
    mission = mission_info(session, mission_id)
    scope = resolve(session, mission_id, filters)
    version = version_of(session, mission_id)
    language = options.language or mission.languages[0]
    title, stem = describe(kind, mission, filters, options, version)
    tables: list[Table]
    if kind == Kind.findings:
        tables = [
            Table("findings", FINDINGS_COLUMNS, findings_rows(session, mission, scope, language))
        ]
    elif kind == Kind.counting:
        counting = views.compute_as(CountingSection, session, mission_id, kind, filters, language)
        checks = ["check", "rule", "failed", "checked"]
        tables = [
            counting_table(session, mission, scope),
            _summary("checks", counting.checks, checks),
        ]
    elif kind == Kind.incidents:
        incidents = views.compute_as(IncidentsSection, session, mission_id, kind, filters, language)
        by_type = ["type", "label", "count", "observed", "reported"]
        tables = [
            incidents_table(session, mission, scope, language),
            _summary("by_type", incidents.by_type, by_type),
        ]
    else:
        critical = views.compute_as(CriticalSection, session, mission_id, kind, filters, language)
        by_question = ["code", "value", "label", "answer", "count", "stations", "pattern",
                       "top_region"]  # fmt: skip
        tables = [
            critical_table(session, mission, scope, language),
            _summary("by_question", critical.by_question, by_question),
        ]
    return Export(kind, mission_id, title, stem, tables, version, {"scope": scope})
