"""Checklists wide: one row per checklist (version), one column per question, and a codebook.

Answers are read from each checklist's stored payload (the answers as validated at intake,
the same ones its `answer` rows were made from): one JSON document per row is several
times cheaper than the answer rows, about forty of them per checklist, through the driver.
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import orjson
from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from api.checklist_schema import NA, SCALE4, YES_NO, Question, QuestionType
from api.kit.spreadsheet import safe_cell
from api.services.exports.common import (
    BOOL,
    DATETIME,
    FLAG,
    INT,
    TEXT,
    TIME,
    Column,
    Export,
    Kind,
    MissionInfo,
    Options,
    Table,
    Values,
    describe,
    mission_info,
    version_of,
)
from api.services.findings.questions import BUILT_IN_LABELS, compiled_template, language_key
from api.services.findings.scope import (
    CL,
    LOC,
    OBS,
    ST,
    TEAM,
    TPL,
    Filters,
    Scope,
    checklist_predicate,
    resolve,
)

PLACE_LEVELS = ("region", "district", "city", "country", "post")
# Ids, phases and review states are Pollcheck's own codes: written as they are (`plain`).
META_COLUMNS = [
    Column("checklist_id", plain=True),
    Column("root_id", plain=True),
    Column("version", INT),
    Column("replaces_id", plain=True),
    Column("is_latest", BOOL),
    Column("station_code"),
    Column("station_name"),
    *[Column(level) for level in PLACE_LEVELS],
    Column("observer_code"),
    Column("team"),
    Column("phase", plain=True),
    Column("template"),
    Column("template_version", INT),
    Column("observed_at_utc", DATETIME),
    Column("observed_at_local", DATETIME),
    Column("received_at_utc", DATETIME),
    Column("received_at_local", DATETIME),
    Column("review_state", plain=True),
    Column("quarantined", BOOL),
    Column("clock_flagged", BOOL),
    Column("clock_skew_s", INT),
]
BATCH = 1000


@dataclass(slots=True)
class QuestionColumns:
    """A question of the export: its newest wording and, for multi-choice, every option
    any of its versions had (each a 0/1 column)."""

    question: Question
    phases: set[str] = field(default_factory=set)
    options: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)


def questions_of(session: Session, mission_id: uuid.UUID, filters: Filters) -> dict[str, Any]:
    """The questions of the (filtered) published templates, in template order."""
    q = select(TPL.c.id, TPL.c.code, TPL.c.version, TPL.c.definition).where(
        TPL.c.mission_id == mission_id, TPL.c.status != "draft"
    )
    if filters.template is not None:
        q = q.where(TPL.c.code == filters.template)
    if filters.template_version is not None:
        q = q.where(TPL.c.version == filters.template_version)
    out: dict[str, QuestionColumns] = {}
    for tpl_id, code, version, definition in session.execute(q.order_by(TPL.c.code, TPL.c.version)):
        for qcode, cq in compiled_template(tpl_id, definition).questions.items():
            entry = out.get(qcode)
            if entry is None:
                entry = out[qcode] = QuestionColumns(cq.q)
            entry.question = cq.q  # a later version's wording wins
            entry.phases |= cq.phases
            entry.templates.append(f"{code} v{version}")
            if cq.q.type == QuestionType.multi:
                for opt in [o.code for o in cq.q.options or []] + ([NA] if cq.q.allow_na else []):
                    if opt not in entry.options:
                        entry.options.append(opt)
    return out


def answer_columns(questions: dict[str, QuestionColumns]) -> list[Column]:
    cols: list[Column] = []
    for code, qc in questions.items():
        t = qc.question.type
        if t == QuestionType.multi:
            cols.extend(Column(f"{code}_{opt}", FLAG, plain=True) for opt in qc.options)
        elif t == QuestionType.integer:
            cols.append(Column(code, INT, plain=True))
        elif t == QuestionType.time:
            cols.append(Column(code, TIME))
        elif t == QuestionType.text:
            cols.append(Column(code, TEXT))
        else:  # closed: a validated code, or its label made safe in `answer_labels`
            cols.append(Column(code, TEXT, plain=True))
    return cols


def answer_labels(q: Question, language: str) -> dict[str, str]:
    """value -> label in one language (the built-in answers' labels for yes/no and scales)."""
    built_in = BUILT_IN_LABELS[language_key(BUILT_IN_LABELS, language) or "en"]
    out = {NA: built_in[NA]}
    if q.type == QuestionType.yes_no:
        out |= {v: built_in[v] for v in YES_NO}
    elif q.type == QuestionType.scale4:
        out |= {v: built_in[v] for v in SCALE4}
    for o in q.options or []:
        out[o.code] = _pick(o.label, language)
    return {k: safe_cell(v) for k, v in out.items()}


def _pick(labels: dict[str, str], language: str) -> str:
    key = language_key(labels, language)
    return labels[key] if key else next(iter(labels.values()))


def _cells(qc: QuestionColumns, labels: dict[str, str] | None) -> Any:
    """A function from the question's stored answer to its cells (a tuple)."""
    code, t = qc.question.code, qc.question.type
    if t == QuestionType.multi:
        options = qc.options
        blank = (None,) * len(options)

        def multi(answers: dict[str, Any]) -> tuple[Any, ...]:
            chosen = answers.get(code)
            if not chosen:
                return blank
            return tuple(1 if o in chosen else 0 for o in options)

        return multi
    if t == QuestionType.time:

        def clock(answers: dict[str, Any]) -> tuple[Any, ...]:
            v = answers.get(code)
            if v is None:
                return (None,)
            if v == NA:
                return (labels.get(NA, NA) if labels else NA,)
            return (time(int(v[:2]), int(v[3:5])),)

        return clock
    if labels is not None and t != QuestionType.text:

        def labelled(answers: dict[str, Any]) -> tuple[Any, ...]:
            v = answers.get(code)
            return (labels.get(v, v) if isinstance(v, str) else v,)

        return labelled

    def plain(answers: dict[str, Any]) -> tuple[Any, ...]:
        return (answers.get(code),)

    return plain


def _segments(
    questions: dict[str, QuestionColumns], language: str | None
) -> list[tuple[list[str], Any]]:
    """The answer columns as runs: (codes, None) for questions whose stored answer is the
    cell as it is, read with one comprehension, and ([], cells) for the others."""
    out: list[tuple[list[str], Any]] = []
    for code, qc in questions.items():
        t = qc.question.type
        as_is = t in (QuestionType.integer, QuestionType.text) or (
            language is None and t != QuestionType.multi and t != QuestionType.time
        )
        if as_is:
            if out and out[-1][1] is None:
                out[-1][0].append(code)
            else:
                out.append(([code], None))
        else:
            labels = answer_labels(qc.question, language) if language is not None else None
            out.append(([], _cells(qc, labels)))
    return out


def _places(session: Session, mission_id: uuid.UUID) -> dict[uuid.UUID, tuple[str | None, ...]]:
    """Every place of the mission -> its name at each level (region, district, …)."""
    rows = {
        r.id: r
        for r in session.execute(
            select(LOC.c.id, LOC.c.parent_id, LOC.c.kind, LOC.c.name).where(
                LOC.c.mission_id == mission_id
            )
        )
    }
    out: dict[uuid.UUID, tuple[str | None, ...]] = {}
    for loc_id in rows:
        names: dict[str, str] = {}
        node = rows.get(loc_id)
        while node is not None and len(names) < 8:
            names.setdefault(str(node.kind), node.name)
            node = rows.get(node.parent_id) if node.parent_id else None
        out[loc_id] = tuple(names.get(level) for level in PLACE_LEVELS)
    return out


def select_checklists(scope: Scope, versions: str) -> Any:
    """The checklists of an export, with what their metadata columns need, oldest first."""
    pred = checklist_predicate(scope, versions=versions)
    if scope.empty:
        pred = false()
    return (
        select(
            CL.c.id,
            CL.c.root_id,
            CL.c.version,
            CL.c.replaces_id,
            CL.c.is_latest,
            ST.c.code.label("station_code"),
            ST.c.name.label("station_name"),
            ST.c.location_id,
            OBS.c.code.label("observer_code"),
            TEAM.c.name.label("team"),
            CL.c.phase,
            TPL.c.code.label("template"),
            TPL.c.version.label("template_version"),
            CL.c.observed_at,
            CL.c.received_at,
            CL.c.review_state,
            CL.c.quarantined,
            CL.c.clock_flagged,
            CL.c.clock_skew_s,
            CL.c.payload,
        )
        .select_from(
            CL.join(ST, ST.c.id == CL.c.station_id)
            .join(OBS, OBS.c.id == CL.c.observer_id)
            .outerjoin(TEAM, TEAM.c.id == OBS.c.team_id)
            .join(TPL, TPL.c.id == CL.c.template_id)
        )
        .where(pred)
        .order_by(CL.c.received_at, CL.c.id)
    )


def count_checklists(session: Session, scope: Scope, versions: str) -> int:
    if scope.empty:
        return 0
    pred = checklist_predicate(scope, versions=versions)
    return int(session.scalar(select(func.count()).select_from(CL).where(pred)) or 0)


def rows(
    session: Session,
    mission: MissionInfo,
    scope: Scope,
    options: Options,
    questions: dict[str, QuestionColumns],
    narrow: Callable[[Any], Any] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The wide rows, streamed from one server-side cursor (`narrow`: a change to the
    query, such as the OData feed's filter and page)."""
    zone = zoneinfo.ZoneInfo(mission.timezone)
    places = _places(session, mission.id)
    no_place = (None,) * len(PLACE_LEVELS)
    language = options.language or mission.languages[0]
    segments = _segments(questions, language if options.values == Values.labels else None)
    q = select_checklists(scope, options.versions.value)
    if narrow is not None:
        q = narrow(q)
    result = session.execute(q.execution_options(stream_results=True, yield_per=BATCH))
    for r in result:
        # Unpacked once (in `select_checklists`' order): a row's attributes cost a lookup each.
        (id_, root, version, replaces, latest, station_code, station_name, location,
         observer, team, phase, template, template_version, observed, received, state,
         quarantined, flagged, skew, payload) = r  # fmt: skip
        answers = orjson.loads(payload).get("answers") or {}
        cells: list[Any] = [
            str(id_), str(root), version, str(replaces) if replaces else None, latest,
            station_code, station_name, *places.get(location, no_place), observer, team,
            phase, template, template_version, observed, _local(observed, zone), received,
            _local(received, zone), state, quarantined, flagged, skew,
        ]  # fmt: skip
        get = answers.get
        for codes, cell in segments:
            if cell is None:  # a run of questions whose answer is its cell
                cells.extend(map(get, codes))
            else:
                cells += cell(answers)
        yield tuple(cells)


def _local(at: datetime | None, zone: zoneinfo.ZoneInfo) -> datetime | None:
    return at.astimezone(zone) if at is not None else None


def codebook(mission: MissionInfo, questions: dict[str, QuestionColumns]) -> Table:
    """Question code, column, type, phases, critical answers and a label per language."""
    langs = mission.languages
    columns = [
        Column("column"),
        Column("question"),
        Column("answer"),
        Column("type"),
        Column("phases"),
        Column("critical"),
        Column("templates"),
        *[Column(f"label_{lang}") for lang in langs],
    ]

    def book() -> Iterator[tuple[Any, ...]]:
        for code, qc in questions.items():
            q = qc.question
            phases = " ".join(sorted(qc.phases))
            critical = " ".join(q.critical) or (
                f">= {q.critical_min}" if q.critical_min is not None else ""
            )
            labels = [_pick(q.label, lang) for lang in langs]
            column = code if q.type != QuestionType.multi else ""
            yield (column, code, None, q.type.value, phases, critical, ", ".join(qc.templates),
                   *labels)  # fmt: skip
            per_lang = [answer_labels(q, lang) for lang in langs]
            values: list[str] = []
            if q.type == QuestionType.multi:
                values = qc.options
            elif q.type in (QuestionType.single, QuestionType.yes_no, QuestionType.scale4):
                values = [o.code for o in q.options or []] or list(
                    YES_NO if q.type == QuestionType.yes_no else SCALE4
                )
                if q.allow_na:
                    values.append(NA)
            elif q.allow_na:
                values = [NA]
            for v in values:
                column = f"{code}_{v}" if q.type == QuestionType.multi else code
                crit = "yes" if v in q.critical else ""
                yield (column, code, v, "option", phases, crit, None,
                       *[lab.get(v, v) for lab in per_lang])  # fmt: skip

    return Table("codebook", columns, book())


def export(session: Session, mission_id: uuid.UUID, filters: Filters, options: Options) -> Export:
    """The wide checklists export (rows are read as the caller consumes them)."""
    mission = mission_info(session, mission_id)
    scope = resolve(session, mission_id, filters)
    version = version_of(session, mission_id)
    questions = questions_of(session, mission_id, filters)
    title, stem = describe(Kind.checklists, mission, filters, options, version)
    main = Table(
        "checklists",
        META_COLUMNS + answer_columns(questions),
        rows(session, mission, scope, options, questions),
    )
    return Export(
        Kind.checklists, mission_id, title, stem, [main, codebook(mission, questions)], version,
        {"scope": scope, "versions": options.versions.value},
    )  # fmt: skip
