"""The default checklist template (api/data/default_checklist.yaml) loads, validates and behaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api.checklist_schema import (
    CompiledTemplate,
    Phase,
    Question,
    QuestionType,
    TemplateDefinition,
)

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "api" / "data" / "default_checklist.yaml"

# The irregularity types the reference method stars (critical when observed or reported).
STARRED_IRREGULARITIES = {"E1", "E2", "E3", "E4", "E6", "E8", "E9", "E10", "E11", "E12"}
UNSTARRED_IRREGULARITIES = {"E5", "E7"}  # group/family voting, photographed ballots
PROTOCOL_CODES = ("P_R", "P_RC", "P_I", "P_U", "P_S", "P_B", "P_X", "P_K", "P_V", "P_V1", "P_V2")


@pytest.fixture(scope="module")
def defn() -> TemplateDefinition:
    with TEMPLATE_PATH.open(encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    return TemplateDefinition.model_validate(raw)


@pytest.fixture(scope="module")
def compiled(defn: TemplateDefinition) -> CompiledTemplate:
    return CompiledTemplate(defn)


def _questions(defn: TemplateDefinition) -> dict[str, Question]:
    return {q.code: q for s in defn.sections for q in s.questions}


def _phases_of(defn: TemplateDefinition) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in defn.sections:
        phases = {p.value for p in s.phases} or {p.value for p in Phase}
        for q in s.questions:
            out[q.code] = phases
    return out


def test_header(defn: TemplateDefinition) -> None:
    assert defn.code == "default"
    assert defn.version == 1
    assert defn.languages == ["en", "ru"]
    assert 60 <= len(_questions(defn)) <= 95


def test_every_label_has_english_and_russian(defn: TemplateDefinition) -> None:
    labels: list[tuple[str, dict[str, str]]] = [("title", defn.title)]
    for s in defn.sections:
        labels.append((f"section {s.code}", s.title))
        for q in s.questions:
            labels.append((f"question {q.code}", q.label))
            if q.hint is not None:
                labels.append((f"hint {q.code}", q.hint))
            for o in q.options or []:
                labels.append((f"option {q.code}.{o.code}", o.label))
    missing = [
        where
        for where, text in labels
        if not all(text.get(lang, "").strip() for lang in ("en", "ru"))
    ]
    assert missing == []
    # Russian text really is Russian (contains Cyrillic), apart from bare numeric ranges.
    not_cyrillic = [
        where
        for where, text in labels
        if not any("а" <= ch.lower() <= "я" or ch in "ёЁ" for ch in text["ru"])
        and any(ch.isalpha() for ch in text["en"])
    ]
    assert not_cyrillic == []


def test_protocol_names_integer_questions_in_a_closing_section(defn: TemplateDefinition) -> None:
    assert defn.protocol is not None
    questions = _questions(defn)
    phases = _phases_of(defn)
    codes = defn.protocol.codes()
    assert codes == list(PROTOCOL_CODES)
    for code in codes:
        q = questions[code]
        assert q.type == QuestionType.integer, code
        assert q.min == 0 and q.max is not None and q.max >= 10000, code
        assert phases[code] == {"closing"}, code


def test_irregularities_are_observed_reported_none(defn: TemplateDefinition) -> None:
    section = next(s for s in defn.sections if s.code == "E")
    assert {p.value for p in section.phases} == {"voting", "closing"}
    by_code = {q.code: q for q in section.questions}
    types = [q for q in section.questions if q.type == QuestionType.single]
    assert {q.code for q in types} == STARRED_IRREGULARITIES | UNSTARRED_IRREGULARITIES
    for q in types:
        assert [o.code for o in q.options or []] == ["observed", "reported", "none"], q.code
        assert q.required, q.code
        expected = ["observed", "reported"] if q.code in STARRED_IRREGULARITIES else []
        assert sorted(q.critical) == expected, q.code
        count = by_code[f"{q.code}N"]
        assert count.type == QuestionType.integer and count.min == 0
        assert count.show_if is not None and count.show_if.question == q.code
        assert count.show_if.accepted() == {"observed", "reported"}


def test_overall_questions_are_scale4_critical_on_bad(defn: TemplateDefinition) -> None:
    questions = _questions(defn)
    phases = _phases_of(defn)
    for code, phase in (("H1", "opening"), ("H2", "voting"), ("H4", "closing")):
        q = questions[code]
        assert q.type == QuestionType.scale4 and q.required
        assert sorted(q.critical) == ["bad", "very_bad"]
        assert phases[code] == {phase}


def test_show_if_targets_are_asked_in_the_same_phases(defn: TemplateDefinition) -> None:
    # The schema only checks that a show_if target comes earlier; a target asked in
    # other phases would hide its follow-up for good.
    phases = _phases_of(defn)
    for code, q in _questions(defn).items():
        if q.show_if:
            assert phases[code] <= phases[q.show_if.question], code


def test_free_text_is_only_for_notes(defn: TemplateDefinition) -> None:
    texts = {q.code for q in _questions(defn).values() if q.type == QuestionType.text}
    assert texts == {"A7", "B6", "D10", "E13", "F12", "G4"}


# --- answer validation ------------------------------------------------------------------


def _no_irregularities() -> dict[str, Any]:
    return {f"E{i}": "none" for i in range(1, 13)}


ACCESS = {
    "B1": "yes",
    "B2": "yes",
    "B3": "no",
    "B4": "yes",
    "B5": ["domestic_observers", "party_agents"],
}

VOTING: dict[str, Any] = {
    **ACCESS,
    "C1": "partly",
    "C2": "yes",
    "C3": "yes",
    "C4": 2,
    "C5": "yes",
    "C6": "no",
    "C7": "no",
    "C8": "na",
    "C9": "yes",
    "D1": "all",
    "D2": "na",
    "D3": "yes",
    "D4": "yes",
    "D5": "from_1_to_5",
    "D6": "no",
    "D7": "no",
    "D8": "no",
    "D9": "good",
    "D10": "Two voters not on the list were referred to the precinct commission.",
    **_no_irregularities(),
    "E5": "observed",
    "E5N": 3,
    "E13": "Three couples entered the booth together around 10:40; the chair did not intervene.",
    "H2": "good",
    "H3": "no",
}

OPENING: dict[str, Any] = {
    **ACCESS,
    "A1": "within_30min",
    "A2": "yes",
    "A3": "yes",
    "A4": ["ink"],
    "A5": "yes",
    "A6": "none",
    "H1": "very_good",
}

CLOSING: dict[str, Any] = {
    **ACCESS,
    **_no_irregularities(),
    "F1": "yes",
    "F2": "no",
    "F3": "yes",
    "F4": "yes",
    "F5": "yes",
    "F6": "yes",
    "F7": "yes",
    "F8": "no",
    "F9": "yes",
    "F10": "na",
    "F11": "yes",
    # R, Rc, I, U, S, B, X, K, V, yes, no: every reference check holds.
    "P_R": 1500,
    "P_RC": 1520,
    "P_I": 1012,
    "P_U": 505,
    "P_S": 3,
    "P_B": 1010,
    "P_X": 12,
    "P_K": 8,
    "P_V": 990,
    "P_V1": 700,
    "P_V2": 290,
    "H4": "good",
    "H5": "na",
}

INCIDENT: dict[str, Any] = {
    "G1": "ballot_stuffing",
    "G2": "observed",
    "G3": "14:05",
    "G4": "A man put a bundle of folded ballots into the box; the chair did nothing.",
}


@pytest.mark.parametrize(
    ("phase", "answers"),
    [("voting", VOTING), ("opening", OPENING), ("closing", CLOSING), ("incident", INCIDENT)],
)
def test_complete_answer_sets_pass(
    compiled: CompiledTemplate, phase: str, answers: dict[str, Any]
) -> None:
    rows, errors = compiled.validate(phase, answers)
    assert errors == []
    assert {r.question_code for r in rows} == set(answers)


def test_voting_answers_carry_the_right_critical_flags(compiled: CompiledTemplate) -> None:
    rows, errors = compiled.validate("voting", VOTING)
    assert errors == []
    assert [r.question_code for r in rows if r.critical] == []  # group voting is not starred

    rows, errors = compiled.validate(
        "voting", {**VOTING, "E1": "reported", "E1N": 1, "D4": "no", "H2": "bad"}
    )
    assert errors == []
    assert sorted(r.question_code for r in rows if r.critical) == ["D4", "E1", "H2"]


def test_protocol_figures_satisfy_the_reference_checks() -> None:
    f = CLOSING
    assert f["P_V1"] + f["P_V2"] == f["P_V"]
    assert f["P_V"] + f["P_X"] + f["P_K"] == f["P_B"]
    assert f["P_I"] + f["P_U"] + f["P_S"] == f["P_RC"]
    assert f["P_B"] <= f["P_I"] <= f["P_R"]


def test_answering_a_hidden_question_fails(compiled: CompiledTemplate) -> None:
    # The count of an irregularity is only asked when it was observed or reported.
    rows, errors = compiled.validate("voting", {**VOTING, "E1": "none", "E1N": 4})
    assert rows == []
    assert [(e.path, e.code) for e in errors] == [(["answers", "E1N"], "hidden_by_show_if")]

    # Which materials were missing is only asked when materials were missing.
    _, errors = compiled.validate("opening", {**OPENING, "A3": "no"})
    assert [(e.path[-1], e.code) for e in errors] == [("A4", "hidden_by_show_if")]

    # Protocol figures are only asked when the observer could copy them.
    closing = {k: v for k, v in CLOSING.items() if k == "P_R" or not k.startswith("P_")}
    _, errors = compiled.validate("closing", {**closing, "F11": "no"})
    assert [(e.path[-1], e.code) for e in errors] == [("P_R", "hidden_by_show_if")]


def test_shown_required_follow_ups_are_required(compiled: CompiledTemplate) -> None:
    answers = {k: v for k, v in CLOSING.items() if k != "P_V2"}
    _, errors = compiled.validate("closing", answers)
    assert [(e.path[-1], e.code) for e in errors] == [("P_V2", "required")]

    no_protocol = {k: v for k, v in CLOSING.items() if not k.startswith("P_")}
    rows, errors = compiled.validate("closing", {**no_protocol, "F11": "no"})
    assert errors == [] and rows


def test_questions_of_other_phases_are_refused(compiled: CompiledTemplate) -> None:
    _, errors = compiled.validate("voting", {**VOTING, "A1": "later", "P_R": 100})
    assert sorted((e.path[-1], e.code) for e in errors) == [
        ("A1", "not_in_phase"),
        ("P_R", "not_in_phase"),
    ]
