"""Checklist templates: their definition format, its checks, and answer validation.

A template is what a mission's core team writes (YAML or JSON) and what phones render.
Once published a version never changes, so a compiled template can be cached by id.
Answer validation runs on the intake hot path: it works on plain dicts and sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.checklist import Phase

CODE_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"
Code = Annotated[str, Field(pattern=CODE_PATTERN, description="Short stable code, e.g. `A1`.")]
Labels = Annotated[
    dict[str, Annotated[str, Field(min_length=1, max_length=1000)]],
    Field(description="Text per language code, e.g. `{en: ..., ru: ...}`."),
]
TIME_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class QuestionType(StrEnum):
    yes_no = "yes_no"
    single = "single"
    multi = "multi"
    integer = "integer"
    time = "time"
    scale4 = "scale4"
    text = "text"


YES_NO = ("yes", "no")
SCALE4 = ("very_good", "good", "bad", "very_bad")
NEGATIVE_SCALE4 = ("bad", "very_bad")
NA = "na"
MAX_NUMBER = 10**15


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Option(_Strict):
    code: Code
    label: Labels
    na: bool = Field(
        False, description="This option means 'not applicable': left out of denominators."
    )


class ShowIf(_Strict):
    """Show a question only when an earlier answer matches."""

    question: Code
    equals: str | int | None = None
    in_: list[str | int] | None = Field(None, alias="in")

    @model_validator(mode="before")
    @classmethod
    def _no_yaml_booleans(cls, data: Any) -> Any:
        values = [data.get("equals"), *(data.get("in") or [])] if isinstance(data, dict) else []
        if any(isinstance(v, bool) for v in values):
            raise ValueError("show_if got true/false: quote answers such as 'yes' and 'no' in YAML")
        return data

    @model_validator(mode="after")
    def _one_condition(self) -> ShowIf:
        if (self.equals is None) == (self.in_ is None):
            raise ValueError("show_if needs exactly one of `equals` or `in`")
        return self

    def accepted(self) -> set[str]:
        values = [self.equals] if self.equals is not None else list(self.in_ or [])
        return {str(v) for v in values}


class Question(_Strict):
    code: Code
    type: QuestionType
    label: Labels
    hint: Labels | None = None
    required: bool = False
    options: list[Option] | None = None
    allow_na: bool = Field(False, description="Accept `na` (not applicable) as an answer.")
    min: int | None = None
    max: int | None = None
    critical: list[str] = Field(default_factory=list, description="Answers that are critical.")
    critical_min: int | None = Field(None, description="For integers: values >= this are critical.")
    show_if: ShowIf | None = None
    max_length: int = Field(2000, ge=1, le=10000)

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        choice = self.type in (QuestionType.single, QuestionType.multi)
        if choice and not self.options:
            raise ValueError(f"question {self.code}: a {self.type} question needs options")
        if not choice and self.options:
            raise ValueError(f"question {self.code}: only single/multi questions take options")
        if self.type != QuestionType.integer and (
            self.min is not None or self.max is not None or self.critical_min is not None
        ):
            raise ValueError(f"question {self.code}: min/max/critical_min are for integers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"question {self.code}: min is above max")
        if self.options:
            codes = [o.code for o in self.options]
            if len(set(codes)) != len(codes):
                raise ValueError(f"question {self.code}: option codes repeat")
        allowed = self.allowed_values()
        if allowed is not None:
            bad = [c for c in self.critical if c not in allowed]
            if bad:
                raise ValueError(f"question {self.code}: critical values {bad} are not answers")
        elif self.critical:
            raise ValueError(f"question {self.code}: use critical_min for integers")
        return self

    def allowed_values(self) -> set[str] | None:
        """The closed set of answers, or None for integer/time/text."""
        na = {NA} if self.allow_na else set()
        if self.type == QuestionType.yes_no:
            return set(YES_NO) | na
        if self.type == QuestionType.scale4:
            return set(SCALE4) | na
        if self.options:
            return {o.code for o in self.options} | na
        return None


class Section(_Strict):
    code: Code
    title: Labels
    phases: list[Phase] = Field(
        default_factory=list, description="Phases this section is asked in; empty means all."
    )
    questions: list[Question] = Field(min_length=1)

    def asked_in(self) -> frozenset[str]:
        """The phases this section is asked in (every phase when it names none)."""
        return frozenset(p.value for p in self.phases) or frozenset(p.value for p in Phase)


# The official protocol's figures, in the order of the reference (registered voters first).
PROTOCOL_FIGURES = (
    "registered",
    "received",
    "issued",
    "unused",
    "spoiled",
    "in_box",
    "invalid",
    "blank",
    "valid",
)


class Protocol(_Strict):
    """Which integer questions hold the official protocol figures (for counting checks)."""

    registered: Code
    received: Code
    issued: Code
    unused: Code
    spoiled: Code
    in_box: Code
    invalid: Code
    blank: Code
    valid: Code
    options: list[Code] = Field(min_length=1, description="Votes per option/candidate.")

    def codes(self) -> list[str]:
        return [getattr(self, f) for f in PROTOCOL_FIGURES] + list(self.options)


SCALE = "scale4"  # a role that needs a 4-point assessment rather than one answer


class StatementQuestions(_Strict):
    """Which questions the draft statement words, each for one role; all optional. A role
    left out leaves its sentence out of the statement (coverage, irregularities, counting,
    incidents and critical answers need no role); `statement: {}` leaves them all out. A
    template without the block gets the default template's roles for those of its
    questions that fit them (`api.services.findings.questions.statement_questions`)."""

    opening_assessment: Code | None = Field(None, description="4-point scale asked at opening")
    voting_assessment: Code | None = Field(None, description="4-point scale asked in voting")
    count_assessment: Code | None = Field(None, description="4-point scale asked at closing")
    observers_admitted: Code | None = Field(
        None, description="'yes': observers were admitted without restriction"
    )
    observers_restricted: Code | None = Field(
        None, description="'yes': observers were asked to leave or restricted"
    )
    secrecy: Code | None = Field(
        None, description="Asked in voting; 'no': the secrecy of the vote was not respected"
    )
    intimidation: Code | None = Field(
        None, description="Asked in voting; 'yes': intimidation of or pressure on voters seen"
    )
    accessibility: list[Code] = Field(
        default_factory=list,
        description="Asked in voting; 'yes': a provision for voters with disabilities is there",
    )

    def uses(self) -> list[tuple[str, str, str | None, str]]:
        """(role, question code, phase it must be asked in or None, the answer it needs or
        SCALE) for every role given."""
        rules: dict[str, tuple[str | None, str]] = {
            "opening_assessment": ("opening", SCALE),
            "voting_assessment": ("voting", SCALE),
            "count_assessment": ("closing", SCALE),
            "observers_admitted": (None, "yes"),
            "observers_restricted": (None, "yes"),
            "secrecy": ("voting", "no"),
            "intimidation": ("voting", "yes"),
        }
        out = [(role, code, *rule) for role, rule in rules.items() if (code := getattr(self, role))]
        return out + [("accessibility", code, "voting", "yes") for code in self.accessibility]

    def problems(
        self, questions: dict[str, Question], phases_of: dict[str, frozenset[str]]
    ) -> list[str]:
        """Why a role does not fit the question it names (none when all fit)."""
        found = [_misfit(use, questions, phases_of) for use in self.uses()]
        return [p for p in found if p is not None]

    def fitting(
        self, questions: dict[str, Question], phases_of: dict[str, frozenset[str]]
    ) -> StatementQuestions:
        """Only the roles whose questions fit them."""
        keep: dict[str, Any] = {"accessibility": []}
        for use in self.uses():
            if _misfit(use, questions, phases_of) is None:
                role, code = use[0], use[1]
                if role == "accessibility":
                    keep[role].append(code)
                else:
                    keep[role] = code
        return StatementQuestions.model_validate(keep)


def _misfit(
    use: tuple[str, str, str | None, str],
    questions: dict[str, Question],
    phases_of: dict[str, frozenset[str]],
) -> str | None:
    role, code, phase, need = use
    q = questions.get(code)
    if q is None:
        return f"statement: {role} names {code}, which is not a question"
    if phase is not None and phase not in phases_of[code]:
        return f"statement: {role} names {code}, which is not asked at {phase}"
    if need == SCALE and q.type != QuestionType.scale4:
        return f"statement: {role} names {code}, which is not a 4-point scale"
    if need != SCALE and need not in (q.allowed_values() or set()):
        return f"statement: {role} names {code}, which has no answer {need!r}"
    return None


class TemplateDefinition(_Strict):
    code: Code
    version: int = Field(ge=1, le=1_000_000)
    title: Labels
    languages: list[str] = Field(min_length=1, description="First one is the default language.")
    sections: list[Section] = Field(min_length=1)
    protocol: Protocol | None = None
    statement: StatementQuestions | None = Field(
        None, description="The questions the draft statement words, by role"
    )

    def questions_and_phases(self) -> tuple[dict[str, Question], dict[str, frozenset[str]]]:
        """Every question by code, and the phases each is asked in."""
        questions: dict[str, Question] = {}
        phases_of: dict[str, frozenset[str]] = {}
        for section in self.sections:
            for q in section.questions:
                questions[q.code] = q
                phases_of[q.code] = section.asked_in()
        return questions, phases_of

    @model_validator(mode="after")
    def _references(self) -> TemplateDefinition:
        seen: dict[str, Question] = {}
        phases_of: dict[str, frozenset[str]] = {}
        section_codes: set[str] = set()
        for section in self.sections:
            phases = section.asked_in()
            if section.code in section_codes:
                raise ValueError(f"section code {section.code} repeats")
            section_codes.add(section.code)
            self._check_labels(section.title, f"section {section.code}")
            for q in section.questions:
                if q.code in seen:
                    raise ValueError(f"question code {q.code} repeats")
                self._check_labels(q.label, f"question {q.code}")
                if q.hint:
                    self._check_labels(q.hint, f"question {q.code} hint")
                for o in q.options or []:
                    self._check_labels(o.label, f"question {q.code} option {o.code}")
                if q.show_if:
                    target = seen.get(q.show_if.question)
                    if target is None:
                        raise ValueError(
                            f"question {q.code}: show_if names {q.show_if.question}, "
                            "which is not an earlier question"
                        )
                    if not phases <= phases_of[target.code]:
                        raise ValueError(
                            f"question {q.code}: show_if names {target.code}, which is not "
                            f"asked in every phase that {q.code} is"
                        )
                    allowed = target.allowed_values()
                    if allowed is not None:
                        bad = sorted(q.show_if.accepted() - allowed)
                        if bad:
                            raise ValueError(
                                f"question {q.code}: show_if values {bad} are not answers "
                                f"of {target.code}"
                            )
                seen[q.code] = q
                phases_of[q.code] = phases
        if self.protocol:
            for code in self.protocol.codes():
                found = seen.get(code)
                if found is None or found.type != QuestionType.integer:
                    raise ValueError(f"protocol names {code}, which is not an integer question")
                if Phase.closing.value not in phases_of[code]:
                    raise ValueError(f"protocol names {code}, which is not asked at closing")
        if self.statement:
            problems = self.statement.problems(seen, phases_of)
            if problems:
                raise ValueError("; ".join(problems))
        return self

    def _check_labels(self, labels: dict[str, str], where: str) -> None:
        default = self.languages[0]
        if default not in labels:
            raise ValueError(f"{where}: label has no text in the default language {default!r}")
        unknown = sorted(set(labels) - set(self.languages))
        if unknown:
            raise ValueError(f"{where}: label in {unknown}, which are not in languages")


# --- compiled form, used on the hot path -------------------------------------------------


# How the findings count a question's answers: each option of a closed question is counted,
# numbers are summed, and times and texts are only counted as answered. Stored with every
# answer, so that the findings fold needs no template to count it.
KIND_OF = {
    QuestionType.yes_no: "closed",
    QuestionType.single: "closed",
    QuestionType.multi: "closed",
    QuestionType.scale4: "closed",
    QuestionType.integer: "number",
    QuestionType.time: "other",
    QuestionType.text: "other",
}


@dataclass(frozen=True, slots=True)
class AnswerRow:
    question_code: str
    position: int
    value: str
    number: int | None
    critical: bool
    kind: str  # KIND_OF the question's type


@dataclass(slots=True)
class AnswerError:
    path: list[str | int]
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "code": self.code, "message": self.message}


@dataclass(slots=True)
class CompiledQuestion:
    q: Question
    order: int
    phases: frozenset[str]
    allowed: frozenset[str] | None
    critical: frozenset[str]
    show_if_question: str | None = None
    show_if_values: frozenset[str] = field(default_factory=frozenset)


class CompiledTemplate:
    """A template ready for fast validation of many checklists."""

    def __init__(self, definition: TemplateDefinition) -> None:
        self.definition = definition
        self.questions: dict[str, CompiledQuestion] = {}
        order = 0
        for section in definition.sections:
            phases = section.asked_in()
            for q in section.questions:
                allowed = q.allowed_values()
                self.questions[q.code] = CompiledQuestion(
                    q=q,
                    order=order,
                    phases=phases,
                    allowed=frozenset(allowed) if allowed is not None else None,
                    critical=frozenset(q.critical),
                    show_if_question=q.show_if.question if q.show_if else None,
                    show_if_values=frozenset(q.show_if.accepted()) if q.show_if else frozenset(),
                )
                order += 1

    def validate(
        self, phase: str, answers: dict[str, Any], base: tuple[str, ...] = ("answers",)
    ) -> tuple[list[AnswerRow], list[AnswerError]]:
        """Check answers for one phase; return typed rows or every problem found."""
        errors: list[AnswerError] = []
        rows: list[AnswerRow] = []
        normalised: dict[str, set[str]] = {}
        failed: set[str] = set()
        for code, raw in answers.items():
            path: list[str | int] = [*base, code]
            cq = self.questions.get(code)
            if cq is None:
                errors.append(
                    AnswerError(path, "unknown_question", f"no question {code!r} in this template")
                )
                continue
            if phase not in cq.phases:
                errors.append(
                    AnswerError(
                        path, "not_in_phase", f"question {code} is not asked in phase {phase!r}"
                    )
                )
                continue
            if raw is None:
                continue
            parsed = self._parse(cq, raw, path, errors)
            if parsed is None:
                failed.add(code)
                continue
            if parsed:  # an empty multi-choice list is no answer
                normalised[code] = {r.value for r in parsed}
                rows.extend(parsed)
        for code, cq in self.questions.items():
            if phase not in cq.phases:
                continue
            shown = self._shown(cq, normalised)
            answered = code in normalised
            if answered and not shown:
                errors.append(
                    AnswerError(
                        [*base, code],
                        "hidden_by_show_if",
                        f"question {code} is only asked when {cq.show_if_question} is one of "
                        f"{sorted(cq.show_if_values)}",
                    )
                )
            elif shown and not answered and cq.q.required and code not in failed:
                errors.append(
                    AnswerError([*base, code], "required", f"question {code} needs an answer")
                )
        if errors:
            return [], errors
        return rows, []

    @staticmethod
    def _shown(cq: CompiledQuestion, normalised: dict[str, set[str]]) -> bool:
        if cq.show_if_question is None:
            return True
        given = normalised.get(cq.show_if_question)
        return bool(given and given & cq.show_if_values)

    @staticmethod
    def _parse(
        cq: CompiledQuestion, raw: Any, path: list[str | int], errors: list[AnswerError]
    ) -> list[AnswerRow] | None:
        q = cq.q
        code = q.code
        t = q.type
        kind = KIND_OF[t]
        if t == QuestionType.multi:
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                errors.append(AnswerError(path, "wrong_type", "expected a list of option codes"))
                return None
            if len(set(raw)) != len(raw):
                errors.append(AnswerError(path, "repeated_option", "an option is chosen twice"))
                return None
            assert cq.allowed is not None
            bad = [v for v in raw if v not in cq.allowed]
            if bad:
                errors.append(
                    AnswerError(path, "not_an_option", f"{bad} not among {sorted(cq.allowed)}")
                )
                return None
            if NA in raw and len(raw) > 1:
                errors.append(AnswerError(path, "na_with_others", "'na' cannot be combined"))
                return None
            return [AnswerRow(code, i, v, None, v in cq.critical, kind) for i, v in enumerate(raw)]
        if t == QuestionType.integer:
            if isinstance(raw, bool) or not isinstance(raw, int):
                if raw == NA and q.allow_na:
                    return [AnswerRow(code, 0, NA, None, False, kind)]
                errors.append(AnswerError(path, "wrong_type", "expected a whole number"))
                return None
            if abs(raw) > MAX_NUMBER:  # a template without min/max must not overflow BIGINT
                errors.append(AnswerError(path, "out_of_bounds", f"{raw} is implausibly large"))
                return None
            if q.min is not None and raw < q.min:
                errors.append(
                    AnswerError(path, "out_of_bounds", f"{raw} is below the minimum {q.min}")
                )
                return None
            if q.max is not None and raw > q.max:
                errors.append(
                    AnswerError(path, "out_of_bounds", f"{raw} is above the maximum {q.max}")
                )
                return None
            crit = q.critical_min is not None and raw >= q.critical_min
            return [AnswerRow(code, 0, str(raw), raw, crit, kind)]
        if not isinstance(raw, str):
            errors.append(AnswerError(path, "wrong_type", f"expected a string for a {t} question"))
            return None
        if t == QuestionType.time:
            if raw == NA and q.allow_na:
                return [AnswerRow(code, 0, NA, None, False, kind)]
            if not TIME_RE.fullmatch(raw):
                errors.append(AnswerError(path, "wrong_type", "expected a time as HH:MM (24 h)"))
                return None
            minutes = int(raw[:2]) * 60 + int(raw[3:])
            return [AnswerRow(code, 0, raw, minutes, False, kind)]
        if t == QuestionType.text:
            if len(raw) > q.max_length:
                errors.append(
                    AnswerError(path, "too_long", f"text is longer than {q.max_length} characters")
                )
                return None
            return [AnswerRow(code, 0, raw, None, False, kind)]
        assert cq.allowed is not None
        if raw not in cq.allowed:
            errors.append(
                AnswerError(path, "not_an_option", f"{raw!r} not among {sorted(cq.allowed)}")
            )
            return None
        return [AnswerRow(code, 0, raw, None, raw in cq.critical, kind)]


def option_labels(q: Question, language: str) -> dict[str, str]:
    """Answer labels of a closed question in one language (for findings and statements)."""
    if q.options:
        return {o.code: o.label.get(language) or next(iter(o.label.values())) for o in q.options}
    return {}
