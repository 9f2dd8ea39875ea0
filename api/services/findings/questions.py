"""Answer counts per question and phase, from the folded tallies or (for filters the tallies
do not keep) straight from the answers with the same SQL shape."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from sqlalchemy import func, literal_column, not_, select
from sqlalchemy.orm import Session

from api.checklist_schema import (
    NA,
    NEGATIVE_SCALE4,
    SCALE4,
    CompiledTemplate,
    QuestionType,
    StatementQuestions,
    TemplateDefinition,
    option_labels,
)
from api.services.findings.fold import FT, critical_view_rows, emissions
from api.services.findings.scope import CL, TPL, Scope, checklist_predicate, once_per_snapshot
from api.services.findings.stats import FindingsSettings, share_text, share_value, wilson
from api.services.templates import default_definition
from models.checklist import Phase
from models.views import (
    AnswerFindings,
    AnyQuestionFindings,
    ChoiceFindings,
    CountAt,
    FindingsSection,
    FindingsTotals,
    IntegerFindings,
    IrregularityFindings,
    NegativeFindings,
    PhaseFindings,
    PhaseTotals,
    ScaleFindings,
    TimeFindings,
)

PHASES = [p.value for p in Phase]
# The built-in answers' labels (a template names only its own options), per language as
# the observers' web app has them (web/i18n.js); English for a language not listed.
BUILT_IN_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "yes": "Yes",
        "no": "No",
        NA: "Not applicable",
        "very_good": "Very good",
        "good": "Good",
        "bad": "Bad",
        "very_bad": "Very bad",
    },
    "ru": {
        "yes": "Да",
        "no": "Нет",
        NA: "Неприменимо",
        "very_good": "Очень хорошо",
        "good": "Хорошо",
        "bad": "Плохо",
        "very_bad": "Очень плохо",
    },
}
IRREGULARITY_VALUES = {"observed", "reported", "none"}


@dataclass(slots=True)
class QuestionInfo:
    code: str
    type: QuestionType
    label: str
    section: str
    section_title: str
    phases: frozenset[str]
    order: int
    options: dict[str, str]
    critical: frozenset[str]
    show_if: tuple[str, frozenset[str]] | None
    labels: dict[str, str] = field(default_factory=dict)


# Published (and retired) templates never change: each process compiles one once.
_compiled: dict[uuid.UUID, CompiledTemplate] = {}


def compiled_template(template_id: uuid.UUID, definition: dict[str, Any]) -> CompiledTemplate:
    """A published template's compiled form, kept per process by id."""
    found = _compiled.get(template_id)
    if found is None:
        found = CompiledTemplate(TemplateDefinition.model_validate(definition))
        _compiled[template_id] = found
    return found


def _published(
    session: Session, mission_id: uuid.UUID, newest_first: bool
) -> list[CompiledTemplate]:
    """The mission's published (and retired) templates, compiled: the newest version first
    (then by code), or by code and version. Their ids are read once per view's snapshot
    (a counting view and a statement each asked two or three times), and a definition
    only for a template this process has not compiled: each is a JSON document of tens of
    kilobytes, decoded again on every fold and every view."""
    found = once_per_snapshot(
        session,
        ("published templates", mission_id),
        lambda: session.execute(
            select(TPL.c.id, TPL.c.code, TPL.c.version).where(
                TPL.c.mission_id == mission_id, TPL.c.status != "draft"
            )
        ).all(),
    )
    if newest_first:
        rows = sorted(found, key=lambda t: (-t.version, t.code))
    else:
        rows = sorted(found, key=lambda t: (t.code, t.version))
    missing = [t.id for t in rows if t.id not in _compiled]
    if missing:
        for tpl_id, definition in session.execute(
            select(TPL.c.id, TPL.c.definition).where(TPL.c.id.in_(missing))
        ):
            compiled_template(tpl_id, definition)
    return [_compiled[t.id] for t in rows]


def published(session: Session, mission_id: uuid.UUID) -> list[TemplateDefinition]:
    """The mission's published (and retired) templates, the newest version first."""
    return [ct.definition for ct in _published(session, mission_id, newest_first=True)]


def statement_questions(session: Session, mission_id: uuid.UUID) -> StatementQuestions:
    """The questions the draft statement words, from the newest template that names them.
    A mission whose templates name none (stored before templates could) gets the default
    template's, for those of its questions that fit the role (code, type, phase, answer)."""
    templates = published(session, mission_id)
    for definition in templates:
        if definition.statement is not None:
            return definition.statement
    default = default_definition().statement
    if not templates or default is None:
        return StatementQuestions()
    return default.fitting(*templates[0].questions_and_phases())


def catalog(session: Session, mission_id: uuid.UUID, language: str) -> dict[str, QuestionInfo]:
    """Every question of the mission's templates (a later version's wording wins)."""
    out: dict[str, QuestionInfo] = {}
    for ct in _published(session, mission_id, newest_first=False):
        titles = {s.code: _pick(s.title, language) for s in ct.definition.sections}
        section_of = {q.code: s.code for s in ct.definition.sections for q in s.questions}
        for code, cq in ct.questions.items():
            q = cq.q
            opts = option_labels(q, language)
            built_in = BUILT_IN_LABELS[language_key(BUILT_IN_LABELS, language) or "en"]
            if q.type == QuestionType.yes_no:
                opts = {v: built_in[v] for v in ("yes", "no", NA)}
            elif q.type == QuestionType.scale4:
                opts = {v: built_in[v] for v in (*SCALE4, NA)}
            elif q.allow_na:
                opts[NA] = built_in[NA]
            out[code] = QuestionInfo(
                code=code,
                type=q.type,
                label=_pick(q.label, language),
                section=section_of[code],
                section_title=titles[section_of[code]],
                phases=cq.phases,
                order=cq.order,
                options=opts,
                critical=cq.critical,
                show_if=(cq.show_if_question, cq.show_if_values) if cq.show_if_question else None,
            )
    return dict(sorted(out.items(), key=lambda kv: kv[1].order))


def language_key(tables: dict[str, Any], language: str) -> str | None:
    """The key of `tables` for a language: itself, else its base language ("ru" for
    "ru-RU" or "ru_KZ"), case aside; None when neither is there."""
    wanted = language.lower().replace("_", "-")
    for key in (wanted, wanted.split("-")[0]):
        if key in tables:
            return key
    return None


def _pick(labels: dict[str, str], language: str) -> str:
    key = language_key(labels, language)
    return labels[key] if key else next(iter(labels.values()))


Tally = dict[tuple[str, str, str], tuple[int, int, int, int]]


def tallies(session: Session, scope: Scope) -> Tally:
    """(phase, question, value) -> (observations, stations, total, critical) for a scope."""
    if scope.empty:
        return {}
    if scope.filters.needs_raw:
        return recompute(session, scope)
    q = select(
        FT.c.phase,
        FT.c.question_code,
        FT.c.value,
        FT.c.observations,
        FT.c.stations,
        FT.c.total,
        FT.c.critical,
    ).where(
        FT.c.mission_id == scope.mission_id,
        FT.c.node_id == scope.node_id,
        not_(critical_view_rows()),
    )
    if scope.filters.phase is not None:
        q = q.where(FT.c.phase == scope.filters.phase)
    return {
        (r[0], r[1], r[2]): (r[3], r[4], r[5], r[6])
        for r in session.execute(q)
        if r[3] or r[4] or r[5] or r[6]
    }


def recompute(session: Session, scope: Scope) -> Tally:
    """The same figures computed from the answers with one GROUP BY (no tallies used)."""
    src = (
        select(
            CL.c.id.label("checklist_id"),
            literal_column("1").label("sign"),
            CL.c.mission_id,
            CL.c.station_id,
            CL.c.phase,
        )
        .where(checklist_predicate(scope))
        .subquery("src")
    )
    em = emissions(src).subquery("em")
    keys = (em.c.phase, em.c.question_code, em.c.value)
    rows = session.execute(
        select(
            *keys,
            func.sum(em.c.sign),
            func.count(em.c.station_id.distinct()),
            func.sum(em.c.number),
            func.sum(em.c.crit),
        ).group_by(*keys)
    )
    # Like the tallies: with a phase filter, there is no "all phases" row.
    skip = "all" if scope.filters.phase is not None else None
    return {
        (r[0], r[1], r[2]): (int(r[3]), int(r[4]), int(r[5]), int(r[6]))
        for r in rows
        if r[0] != skip
    }


def _answer(
    value: str,
    label: str,
    cell: tuple[int, int, int, int],
    denominator: int,
    cfg: FindingsSettings,
    random_sample: bool,
    critical: bool,
) -> AnswerFindings:
    count, stations = cell[0], cell[1]
    return AnswerFindings(
        value=value,
        label=label,
        count=count,
        stations=stations,
        share=share_value(Fraction(count, denominator)) if denominator and value != NA else None,
        text=share_text(count, denominator, cfg.small_denominator) if value != NA else None,
        ci95=wilson(count, denominator) if random_sample and value != NA else None,
        critical=critical,
    )


def build(
    data: Tally, questions: dict[str, QuestionInfo], cfg: FindingsSettings, random_sample: bool
) -> FindingsSection:
    """Shape the tallies into per-phase findings with denominators and honest shares."""
    zero = (0, 0, 0, 0)
    phases_out: list[PhaseFindings] = []
    irregularities: list[IrregularityFindings] = []
    for phase in PHASES:
        checklists = data.get((phase, "_", "_"), zero)
        if not checklists[0]:
            continue
        items: list[AnyQuestionFindings] = []
        for code, info in questions.items():
            if phase not in info.phases or info.type == QuestionType.text:
                continue
            answered = data.get((phase, code, "*"), zero)
            na = data.get((phase, code, NA), zero)[0]
            if info.show_if is not None:
                parent, accepted = info.show_if
                asked = min(
                    checklists[0], sum(data.get((phase, parent, v), zero)[0] for v in accepted)
                )
            else:
                asked = checklists[0]
            denominator = answered[0]
            common: dict[str, Any] = {
                "code": code,
                "label": info.label,
                "type": info.type.value,
                "section": info.section,
                "asked": asked,
                "answered": denominator,
                "not_applicable": na,
                "unanswered": max(0, asked - denominator - na),
                "stations": answered[1],
                "critical": sum(c[3] for (p, q, _), c in data.items() if p == phase and q == code),
            }
            if info.type == QuestionType.integer:
                items.append(IntegerFindings(**common, total=data.get((phase, code, "#"), zero)[2]))
                continue
            if info.type == QuestionType.time:
                items.append(TimeFindings(**common))
                continue
            answers = []
            for value, label in info.options.items():
                cell = data.get((phase, code, value), zero)
                if value == NA and not cell[0]:
                    continue
                answers.append(
                    _answer(
                        value,
                        label,
                        cell,
                        denominator,
                        cfg,
                        random_sample,
                        value in info.critical,
                    )
                )
            if info.type == QuestionType.scale4:
                neg = sum(data.get((phase, code, v), zero)[0] for v in NEGATIVE_SCALE4)
                negative = NegativeFindings(
                    count=neg,
                    share=share_value(Fraction(neg, denominator)) if denominator else None,
                    text=share_text(neg, denominator, cfg.small_denominator),
                    ci95=wilson(neg, denominator) if random_sample else None,
                )
                items.append(ScaleFindings(**common, answers=answers, negative=negative))
            else:
                items.append(ChoiceFindings(**common, answers=answers))
            if set(info.options) - {NA} == IRREGULARITY_VALUES:
                irregularities.append(
                    IrregularityFindings(
                        phase=phase,
                        code=code,
                        label=info.label,
                        answered=denominator,
                        observed=_count(data, phase, code, "observed"),
                        reported=_count(data, phase, code, "reported"),
                        cases=data.get((phase, f"{code}N", "#"), zero)[2],
                    )
                )
        phases_out.append(
            PhaseFindings(
                phase=phase,
                observations=checklists[0],
                stations=checklists[1],
                questions=items,
            )
        )
    every = data.get(("all", "_", "_"))
    if every is not None:
        overall = (every[0], every[1])
    elif phases_out:  # a phase filter on the tallies: that phase is everything
        overall = (phases_out[0].observations, phases_out[0].stations)
    else:
        overall = (0, 0)
    return FindingsSection(
        totals=FindingsTotals(
            observations=overall[0],
            stations=overall[1],
            phases=[
                PhaseTotals(phase=p.phase, observations=p.observations, stations=p.stations)
                for p in phases_out
            ],
        ),
        phases=phases_out,
        irregularities=irregularities,
    )


def _count(data: Tally, phase: str, code: str, value: str) -> CountAt:
    cell = data.get((phase, code, value), (0, 0, 0, 0))
    return CountAt(count=cell[0], stations=cell[1])


def incident_questions(questions: dict[str, QuestionInfo]) -> dict[str, QuestionInfo]:
    """The incident form's type, source (observed/reported), time and description questions."""
    out: dict[str, QuestionInfo] = {}
    for info in questions.values():
        if info.phases != frozenset({"incident"}):
            continue
        if info.type == QuestionType.single and set(info.options) >= {"observed", "reported"}:
            out.setdefault("source", info)
        elif info.type == QuestionType.single:
            out.setdefault("type", info)
        elif info.type == QuestionType.time:
            out.setdefault("time", info)
        elif info.type == QuestionType.text:
            out.setdefault("description", info)
    return out


def incident_roles_key(roles: dict[str, QuestionInfo]) -> str:
    """The type and source questions' codes, as `finding_state.incident_roles` keeps them."""
    return " ".join(roles[r].code if r in roles else "" for r in ("type", "source"))
