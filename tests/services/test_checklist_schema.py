"""Template definitions are checked with clear reasons; answers are validated strictly."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from api.checklist_schema import CompiledTemplate, TemplateDefinition
from api.errors import Invalid
from api.services.templates import parse_definition

BASE = """
code: t
version: 1
title: {en: T}
languages: [en]
sections:
  - code: O
    title: {en: Opening}
    phases: [opening]
    questions:
      - {code: O1, type: yes_no, required: true, label: {en: Opened}, critical: ["no"]}
  - code: V
    title: {en: Voting}
    phases: [voting]
    questions:
      - {code: V1, type: yes_no, required: true, label: {en: Queue}}
      - {code: V2, type: single, allow_na: true, label: {en: Priority},
         show_if: {question: V1, equals: "yes"},
         options: [{code: a, label: {en: A}}, {code: b, label: {en: B}}]}
      - {code: V3, type: multi, required: true, label: {en: Which},
         options: [{code: x, label: {en: X}}, {code: y, label: {en: Y}}]}
      - {code: V4, type: time, label: {en: When}}
      - {code: V5, type: integer, min: 0, max: 10, critical_min: 5, label: {en: How many}}
"""


def _definition(text: str = BASE) -> TemplateDefinition:
    return parse_definition(text)


def _problem(text: str) -> str:
    with pytest.raises(Invalid) as info:
        parse_definition(text)
    return " ".join(e["message"] for e in info.value.errors or [])


def test_show_if_must_name_a_question_asked_in_the_same_phases() -> None:
    broken = BASE.replace("show_if: {question: V1", "show_if: {question: O1")
    assert "not asked in every phase" in _problem(broken)


def test_show_if_with_an_unquoted_yes_says_to_quote_it() -> None:
    broken = BASE.replace('equals: "yes"', "equals: yes")
    assert "quote answers" in _problem(broken)


def test_labels_in_languages_the_template_does_not_list_are_refused() -> None:
    broken = BASE.replace("label: {en: Queue}", "label: {en: Queue, kk: Kezek}")
    assert "not in languages" in _problem(broken)


def test_a_label_missing_in_a_declared_language_is_refused_with_its_place() -> None:
    two = BASE.replace("languages: [en]", "languages: [en, ru]").replace(
        "title: {en: T}", "title: {en: T, ru: Т}"
    )
    with pytest.raises(Invalid) as info:
        parse_definition(two)
    paths = [e["path"] for e in info.value.errors or []]
    assert ["sections", 0, "title", "ru"] in paths
    assert ["sections", 1, "questions", 1, "options", 0, "label", "ru"] in paths
    assert ["title", "ru"] not in paths
    assert all(e["code"] == "label_missing" for e in info.value.errors or [])


def test_protocol_must_name_closing_phase_integers() -> None:
    data: dict[str, Any] = yaml.safe_load(BASE)
    data["protocol"] = {
        k: "V5"
        for k in (
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
    }
    data["protocol"]["options"] = ["V5"]
    with pytest.raises(ValueError, match="not asked at closing"):
        TemplateDefinition.model_validate(data)


def test_the_statement_block_names_questions_that_fit_their_roles() -> None:
    fits = BASE + "statement: {intimidation: V1, secrecy: V1, observers_admitted: O1}\n"
    assert _definition(fits).statement is not None
    wrong = {
        "voting_assessment: V1": "voting_assessment names V1, which is not a 4-point scale",
        "intimidation: O1": "intimidation names O1, which is not asked at voting",
        "accessibility: [V2]": "accessibility names V2, which has no answer 'yes'",
        "secrecy: V9": "secrecy names V9, which is not a question",
    }
    for block, message in wrong.items():
        assert message in _problem(BASE + f"statement: {{{block}}}\n"), block


def test_critical_answers_must_be_possible_answers() -> None:
    broken = BASE.replace('critical: ["no"]', 'critical: ["nope"]')
    assert "not answers" in _problem(broken)


def _validate(phase: str, answers: dict[str, Any]) -> tuple[list[Any], dict[str, str]]:
    rows, errors = CompiledTemplate(_definition()).validate(phase, answers)
    return rows, {e.path[-1]: e.code for e in errors}  # type: ignore[misc]


def test_empty_multi_choice_is_no_answer_to_a_required_question() -> None:
    _, errors = _validate("voting", {"V1": "no", "V3": []})
    assert errors == {"V3": "required"}


def test_a_wrong_answer_is_reported_once_not_also_as_missing() -> None:
    _, errors = _validate("voting", {"V1": "maybe", "V3": ["x"]})
    assert errors == {"V1": "not_an_option"}


def test_times_are_strict() -> None:
    _, errors = _validate("voting", {"V1": "no", "V3": ["x"], "V4": "10:00\n"})
    assert errors == {"V4": "wrong_type"}
    rows, errors = _validate("voting", {"V1": "no", "V3": ["x"], "V4": "23:59"})
    assert not errors and any(r.number == 23 * 60 + 59 for r in rows)


def test_not_applicable_and_critical_counts_are_typed() -> None:
    rows, errors = _validate("voting", {"V1": "yes", "V2": "na", "V3": ["x", "y"], "V5": 7})
    assert not errors
    typed = {(r.question_code, r.value): r for r in rows}
    assert typed[("V2", "na")].critical is False
    assert typed[("V5", "7")].number == 7 and typed[("V5", "7")].critical is True
    assert {r.position for r in rows if r.question_code == "V3"} == {0, 1}


def test_booleans_are_not_numbers() -> None:
    _, errors = _validate("voting", {"V1": "no", "V3": ["x"], "V5": True})
    assert errors == {"V5": "wrong_type"}
